"""OAuth 2 apps and bearer tokens, the way Mastodon clients expect them.

Tokens are 256-bit random strings; only their SHA-256 is stored (graph for
durability, Redis as a short-lived cache), so a leaked database yields no
usable token. Revoking deletes both copies, so it takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from config import Settings
from graph.accounts import AccountGraph
from ids import SnowflakeGenerator
from services.availability import REDIS_DOWN, mark_degraded
from services.errors import OAuthError, Unauthorized
from services.passwords import Passwords

KNOWN_SCOPES = {"read", "write", "follow", "push", "profile", "admin:read", "admin:write"}
AUTH_CODE_SECONDS = 600
REVOKED = "revoked"


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def parse_scopes(scope: str | None, default: str = "read") -> list[str]:
    """Mastodon scope strings are space-separated; ``read:statuses`` style sub-scopes are allowed."""
    scopes = (scope or default).replace("+", " ").split()
    for item in scopes:
        if item.split(":")[0] not in {s.split(":")[0] for s in KNOWN_SCOPES}:
            raise OAuthError("invalid_scope", f"unknown scope: {item}")
    return scopes


def scopes_allowed(requested: list[str], granted: list[str]) -> bool:
    """Each requested scope must be granted itself or through its parent (``read`` covers ``read:x``)."""
    return all(s in granted or s.split(":")[0] in granted for s in requested)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an app, and the user on whose behalf it acts (absent for app tokens)."""

    token_hash: str
    app_id: int
    account_id: int | None
    scopes: tuple[str, ...]


class AuthService:
    def __init__(
        self,
        settings: Settings,
        accounts: AccountGraph,
        redis: aioredis.Redis,
        ids: SnowflakeGenerator,
        passwords: Passwords,
    ) -> None:
        self.settings = settings
        self.accounts = accounts
        self.redis = redis
        self.ids = ids
        self.passwords = passwords

    # -- apps -------------------------------------------------------------

    async def create_app(self, name: str, redirect_uris: str, scopes: str | None, website: str | None) -> dict:
        scope_list = parse_scopes(scopes)
        app_id = self.ids.next_id()
        client_id = secrets.token_urlsafe(32)
        client_secret = secrets.token_urlsafe(32)
        await self.accounts.create_app(
            {
                "id": app_id,
                "name": name,
                "website": website,
                "redirect_uri": redirect_uris,
                "scopes": " ".join(scope_list),
                "client_id": client_id,
                "client_secret_hash": token_hash(client_secret),
                "created_at": int(time.time() * 1000),
            }
        )
        return {
            "id": str(app_id),
            "name": name,
            "website": website,
            "scopes": scope_list,
            "redirect_uri": redirect_uris,
            "redirect_uris": redirect_uris.split(),
            "client_id": client_id,
            "client_secret": client_secret,
            "client_secret_expires_at": 0,
            "vapid_key": "",
        }

    async def authenticate_client(self, client_id: str | None, client_secret: str | None) -> dict:
        app = await self.accounts.get_app_by_client_id(client_id) if client_id else None
        if (
            app is None
            or not client_secret
            or not hmac.compare_digest(app["client_secret_hash"], token_hash(client_secret))
        ):
            raise OAuthError(
                "invalid_client",
                "Client authentication failed due to unknown client, no client authentication included, "
                "or unsupported authentication method.",
                401,
            )
        return app

    # -- tokens -----------------------------------------------------------

    async def issue_token(self, app: dict, account_id: int | None, scopes: list[str]) -> dict:
        granted = app["scopes"].split()
        if not scopes_allowed(scopes, granted):
            raise OAuthError("invalid_scope", "The requested scope is invalid, unknown, or malformed.")
        raw = secrets.token_urlsafe(32)
        created_at = int(time.time())
        await self.accounts.create_token(
            {
                "hash": token_hash(raw),
                "app_id": app["id"],
                "account_id": account_id,
                "scopes": " ".join(scopes),
                "created_at": created_at,
            }
        )
        return {"access_token": raw, "token_type": "Bearer", "scope": " ".join(scopes), "created_at": created_at}

    async def check_password(self, login: str, password: str) -> int | None:
        """The account id if ``password`` is right for the username or email ``login``."""
        credentials = await self.accounts.credentials_by_login(login) if login else None
        ok = await self.passwords.verify(credentials["password_hash"] if credentials else None, password)
        return credentials["id"] if ok and credentials else None

    async def app_by_client_id(self, client_id: str) -> dict | None:
        return await self.accounts.get_app_by_client_id(client_id)

    async def app_by_id(self, app_id: int) -> dict | None:
        return await self.accounts.get_app(app_id)

    async def password_grant(self, app: dict, login: str, password: str, scope: str | None) -> dict:
        scopes = parse_scopes(scope, default=app["scopes"])
        account_id = await self.check_password(login, password)
        if account_id is None:
            raise OAuthError(
                "invalid_grant",
                "The provided authorization grant is invalid, expired, revoked, does not match the "
                "redirection URI used in the authorization request, or was issued to another client.",
            )
        return await self.issue_token(app, account_id, scopes)

    async def create_authorization_code(self, app: dict, account_id: int, redirect_uri: str, scopes: list[str]) -> str:
        code = secrets.token_urlsafe(32)
        payload = {"app_id": app["id"], "account_id": account_id, "redirect_uri": redirect_uri, "scopes": scopes}
        await self.redis.set(f"oauth:code:{token_hash(code)}", orjson.dumps(payload), ex=AUTH_CODE_SECONDS)
        return code

    async def authorization_code_grant(self, app: dict, code: str, redirect_uri: str | None) -> dict:
        raw = await self.redis.getdel(f"oauth:code:{token_hash(code)}")  # single use
        grant = orjson.loads(raw) if raw else None
        if grant is None or grant["app_id"] != app["id"] or (redirect_uri and redirect_uri != grant["redirect_uri"]):
            raise OAuthError(
                "invalid_grant", "The authorization code is invalid, expired or was issued to another client."
            )
        return await self.issue_token(app, grant["account_id"], grant["scopes"])

    async def revoke(self, app: dict, raw_token: str) -> None:
        """RFC 7009: revoking an unknown token is not an error."""
        hashed = token_hash(raw_token)
        token = await self.accounts.get_token(hashed)
        if token is None or token["app_id"] != app["id"]:
            return
        # A tombstone, not a delete: a concurrent lookup that read the token
        # before it was deleted must not re-cache it (it caches with NX).
        await self.redis.set(f"token:{hashed}", REVOKED, ex=self.settings.token_cache_seconds)
        await self.accounts.delete_token(hashed, app["id"])

    async def principal(self, raw_token: str) -> Principal:
        """The caller behind a bearer token; cached in Redis for ``token_cache_seconds``."""
        hashed = token_hash(raw_token)
        try:
            cached = await self.redis.get(f"token:{hashed}")
        except REDIS_DOWN:  # the graph knows every live token (a revoked one is deleted there too)
            mark_degraded("redis")
            cached, cache_up = None, False
        else:
            cache_up = True
        if cached == REVOKED:
            raise Unauthorized("The access token was revoked")
        if cached is not None:
            data = orjson.loads(cached)
        else:
            token = await self.accounts.get_token(hashed)
            if token is None:
                raise Unauthorized("The access token is invalid")
            data = {"app_id": token["app_id"], "account_id": token.get("account_id"), "scopes": token["scopes"]}
            if cache_up:
                await self.redis.set(
                    f"token:{hashed}", orjson.dumps(data), ex=self.settings.token_cache_seconds, nx=True
                )
        return Principal(hashed, data["app_id"], data["account_id"], tuple(data["scopes"].split()))
