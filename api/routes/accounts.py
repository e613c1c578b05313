"""Accounts: sign-up, credentials, profiles, look-up."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from api.auth import app_principal, client_address, context, scoped
from api.context import AppContext
from api.entities import account_entity, credential_account_entity
from api.openapi import ANY_TOKEN, doc
from api.pagination import link_header
from api.params import IdPath, parse, parse_id
from api.schemas import Account, CredentialAccount, Token
from config import Settings
from services.accounts import USERNAME_RE
from services.auth import Principal
from services.errors import RateLimited

router = APIRouter()


class SignUpForm(BaseModel):
    username: str = Field(
        max_length=200, description="Letters, digits, underscores", json_schema_extra={"pattern": USERNAME_RE.pattern}
    )
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)
    agreement: bool = Field(default=False, description="Must be true: the user accepts the server's terms")
    locale: str = Field(default="en", max_length=16)
    reason: str | None = Field(default=None, max_length=1000)


class UpdateCredentialsForm(BaseModel):
    display_name: str | None = Field(default=None, max_length=1000)
    note: str | None = Field(default=None, max_length=5000)
    locked: bool | None = None
    bot: bool | None = None
    discoverable: bool | None = None


class LookupQuery(BaseModel):
    acct: str = Field(min_length=1, max_length=400)


def account_page(request: Request, rows: list[tuple[int, dict]], settings: Settings) -> ORJSONResponse:
    """A page of (cursor, account) rows as Accounts, with a ``next`` link (these lists cannot page forward)."""
    headers = link_header(request, rows[0][0], rows[-1][0], prev=False) if rows else {}
    return ORJSONResponse([account_entity(account, settings) for _, account in rows], headers=headers)


async def _credential_account(ctx: AppContext, account: dict) -> dict:
    """The CredentialAccount, with the pending follow requests counted for a locked account."""
    entity = credential_account_entity(account, ctx.settings)
    if account.get("locked"):
        entity["source"]["follow_requests_count"] = await ctx.follows.relation_graph.count_requests(account["id"])
    return entity


@router.post("/api/v1/accounts", **doc(Token, body=SignUpForm, auth=ANY_TOKEN, errors=[429]))
async def sign_up(request: Request, principal: Principal = Depends(app_principal)) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, SignUpForm)
    client = client_address(request)
    decision = await ctx.rate_limiter.hit(
        "signup", client, ctx.settings.signup_rate_limit, ctx.settings.rate_limit_window_seconds
    )
    if not decision.allowed:
        raise RateLimited("Too many requests", headers=decision.headers())
    account = await ctx.accounts.sign_up(form.username, form.email, form.password, form.agreement, form.locale)
    app = await ctx.auth.app_by_id(principal.app_id)
    assert app is not None  # the token was just validated against it
    token = await ctx.auth.issue_token(app, account["id"], list(principal.scopes) or app["scopes"].split())
    return ORJSONResponse(token, headers=decision.headers())


@router.get("/api/v1/accounts/verify_credentials", **doc(CredentialAccount, auth="read:accounts"))
async def verify_credentials(
    request: Request, principal: Principal = Depends(scoped("read:accounts"))
) -> ORJSONResponse:
    ctx = context(request)
    account = await ctx.accounts.get(principal.account_id)  # type: ignore[arg-type]
    return ORJSONResponse(await _credential_account(ctx, account))


@router.patch(
    "/api/v1/accounts/update_credentials", **doc(CredentialAccount, body=UpdateCredentialsForm, auth="write:accounts")
)
async def update_credentials(
    request: Request, principal: Principal = Depends(scoped("write:accounts"))
) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, UpdateCredentialsForm)
    account = await ctx.accounts.update_profile(principal.account_id, form.model_dump(exclude_none=True))  # type: ignore[arg-type]
    if form.locked is False:  # unlocking accepts the pending follow requests (Mastodon's behaviour)
        await ctx.follows.authorize_all(principal.account_id)  # type: ignore[arg-type]
        account = await ctx.accounts.get(principal.account_id)  # type: ignore[arg-type]
    return ORJSONResponse(await _credential_account(ctx, account))


@router.get("/api/v1/accounts/lookup", **doc(Account, query=LookupQuery, errors=[404]))
async def lookup(request: Request) -> ORJSONResponse:
    ctx = context(request)
    query = await parse(request, LookupQuery)
    return ORJSONResponse(account_entity(await ctx.accounts.lookup(query.acct), ctx.settings))


@router.get("/api/v1/accounts/{account_id:id}", **doc(Account, errors=[404]))
async def get_account(account_id: IdPath, request: Request) -> ORJSONResponse:
    ctx = context(request)
    return ORJSONResponse(account_entity(await ctx.accounts.get(parse_id(account_id)), ctx.settings))
