"""Bearer-token authentication as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.requests import HTTPConnection

from api.context import AppContext
from services.auth import Principal
from services.errors import Forbidden, Unauthorized


def context(request: Request) -> AppContext:
    return request.app.state.ctx


def client_address(connection: HTTPConnection) -> str:
    """The peer's address, the key of per-address limits (sign-up, login, open streams)."""
    return connection.client.host if connection.client else "unknown"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("access_token") or None


async def optional_principal(request: Request) -> Principal | None:
    token = bearer_token(request)
    if token is None:
        return None
    return await context(request).auth.principal(token)


async def app_principal(request: Request) -> Principal:
    """Any valid token: an app's own (client_credentials) or a user's."""
    principal = await optional_principal(request)
    if principal is None:
        raise Unauthorized("The access token is invalid")
    return principal


async def user_principal(request: Request) -> Principal:
    """A token that acts for a user; app-only tokens are refused."""
    principal = await app_principal(request)
    if principal.account_id is None:
        raise Forbidden("This method requires an authenticated user")
    return principal


FOLLOW_SCOPES = ("read:follows", "write:follows", "read:blocks", "write:blocks", "read:mutes", "write:mutes")


def has_scope(granted: tuple[str, ...], needed: str) -> bool:
    """Mastodon's scope rules: ``write`` covers ``write:statuses``; legacy ``follow`` covers the follow scopes."""
    top = needed.split(":")[0]
    if needed in granted or top in granted:
        return True
    return "follow" in granted and needed in FOLLOW_SCOPES


def scoped(needed: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: a user token whose scopes cover ``needed`` (403 otherwise, as Mastodon answers)."""

    async def dependency(request: Request) -> Principal:
        principal = await user_principal(request)
        if not has_scope(principal.scopes, needed):
            raise Forbidden("This action is outside the authorized scopes")
        return principal

    return dependency
