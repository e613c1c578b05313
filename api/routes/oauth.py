"""Apps and OAuth 2: ``/api/v1/apps``, ``/oauth/token``, ``/oauth/revoke``, ``/oauth/authorize``."""

from __future__ import annotations

import base64
import html
from typing import Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, ORJSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from api.auth import app_principal, client_address, context
from api.openapi import ANY_TOKEN, doc, request_body
from api.params import parse, read_params, validate
from api.schemas import Application, CredentialApplication, Empty, Token
from services.auth import Principal, parse_scopes, scopes_allowed
from services.errors import OAuthError, RateLimited

router = APIRouter()
OOB = "urn:ietf:wg:oauth:2.0:oob"
ASCII = "^[\\x20-\\x7e]*$"


class AppForm(BaseModel):
    client_name: str = Field(min_length=1, max_length=200)
    redirect_uris: str | list[str] = Field(default=OOB)
    scopes: str | None = Field(default="read", max_length=500)
    website: str | None = Field(default=None, max_length=2000)


class TokenForm(BaseModel):
    grant_type: Literal["password", "client_credentials", "authorization_code"]
    client_id: str | None = Field(default=None, max_length=200)
    client_secret: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1000)
    scope: str | None = Field(default=None, max_length=500)
    code: str | None = Field(default=None, max_length=200)
    redirect_uri: str | None = Field(default=None, max_length=2000)


class RevokeForm(BaseModel):
    client_id: str | None = Field(default=None, max_length=200)
    client_secret: str | None = Field(default=None, max_length=200)
    token: str = Field(min_length=1, max_length=200)


class AuthorizeQuery(BaseModel):
    """RFC 6749 makes all of these ASCII (client ids, URIs, scope tokens, VSCHAR state)."""

    client_id: str = Field(max_length=200, pattern=ASCII)
    redirect_uri: str = Field(default=OOB, max_length=2000, pattern=ASCII)
    scope: str | None = Field(default=None, max_length=500, pattern=ASCII)
    state: str | None = Field(default=None, max_length=500, pattern=ASCII)
    response_type: Literal["code"] = "code"


class AuthorizeForm(AuthorizeQuery):
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1000)


HTML = {"text/html": {"schema": {"type": "string"}}}


def basic_client_credentials(request: Request) -> tuple[str | None, str | None]:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        client_id, _, secret = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None, None
    return client_id, secret


@router.post("/api/v1/apps", **doc(CredentialApplication, body=AppForm))
async def create_app(request: Request) -> ORJSONResponse:
    form = await parse(request, AppForm)
    uris = " ".join(form.redirect_uris) if isinstance(form.redirect_uris, list) else form.redirect_uris
    app = await context(request).auth.create_app(form.client_name, uris or OOB, form.scopes, form.website)
    return ORJSONResponse(app)


@router.get("/api/v1/apps/verify_credentials", **doc(Application, auth=ANY_TOKEN))
async def verify_app(request: Request, principal: Principal = Depends(app_principal)) -> ORJSONResponse:
    app = await context(request).auth.app_by_id(principal.app_id)
    if app is None:
        raise OAuthError("invalid_token", "The access token is invalid", 401)
    return ORJSONResponse(
        {
            "id": str(app["id"]),
            "name": app["name"],
            "website": app.get("website"),
            "scopes": app["scopes"].split(),
            "redirect_uri": app["redirect_uri"],
            "redirect_uris": app["redirect_uri"].split(),
        }
    )


@router.post(
    "/oauth/token",
    # Any invalid parameter is an RFC 6749 400 here (``invalid_request``), never a 422.
    **doc(Token, errors=[400, 401, 413, 429], extra={"requestBody": request_body(TokenForm)}),
)
async def token(request: Request) -> ORJSONResponse:
    ctx = context(request)
    params = await read_params(request)
    try:
        form = validate(TokenForm, params)
    except Exception:
        raise OAuthError(
            "unsupported_grant_type" if "grant_type" in params else "invalid_request",
            "The request is missing a parameter or has an unsupported grant type.",
        ) from None
    basic_id, basic_secret = basic_client_credentials(request)
    app = await ctx.auth.authenticate_client(form.client_id or basic_id, form.client_secret or basic_secret)
    if form.grant_type == "client_credentials":
        result = await ctx.auth.issue_token(app, None, parse_scopes(form.scope, default="read"))
    elif form.grant_type == "password":
        if not form.username or form.password is None:
            raise OAuthError("invalid_request", "username and password are required")
        client = client_address(request)
        decision = await ctx.rate_limiter.hit(
            "login", client, ctx.settings.login_rate_limit, ctx.settings.rate_limit_window_seconds
        )
        if not decision.allowed:
            raise RateLimited("Too many requests", headers=decision.headers())
        result = await ctx.auth.password_grant(app, form.username, form.password, form.scope)
    else:
        if not form.code:
            raise OAuthError("invalid_request", "code is required")
        result = await ctx.auth.authorization_code_grant(app, form.code, form.redirect_uri)
    return ORJSONResponse(result, headers={"Cache-Control": "no-store"})


@router.post("/oauth/revoke", **doc(Empty, body=RevokeForm, errors=[401]))
async def revoke(request: Request) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, RevokeForm)
    basic_id, basic_secret = basic_client_credentials(request)
    app = await ctx.auth.authenticate_client(form.client_id or basic_id, form.client_secret or basic_secret)
    await ctx.auth.revoke(app, form.token)
    return ORJSONResponse({})


def authorize_page(form: AuthorizeQuery, app_name: str, error: str = "") -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(str(v))}">'
        for k, v in {
            "client_id": form.client_id,
            "redirect_uri": form.redirect_uri,
            "scope": form.scope or "read",
            "state": form.state or "",
            "response_type": "code",
        }.items()
    )
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>Authorize {html.escape(app_name)}</title></head>
<body><h1>Authorize {html.escape(app_name)}</h1><p>Scopes: {html.escape(form.scope or "read")}</p>
<p style="color:#b00">{html.escape(error)}</p>
<form method="post" action="/oauth/authorize">{hidden}
<label>Username or email <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Authorize</button></form></body></html>"""
    return HTMLResponse(body, status_code=401 if error else 200)


@router.get(
    "/oauth/authorize",
    response_class=HTMLResponse,
    **doc(query=AuthorizeQuery, responses={200: {"content": HTML, "description": "The sign-in form"}}),
)
async def authorize_form(request: Request) -> HTMLResponse:
    form = await parse(request, AuthorizeQuery)
    app = await context(request).auth.app_by_client_id(form.client_id)
    if app is None or form.redirect_uri not in app["redirect_uri"].split():
        raise OAuthError("invalid_client", "Unknown client or redirect URI", 400)
    return authorize_page(form, app["name"])


@router.post(
    "/oauth/authorize",
    response_model=None,
    response_class=HTMLResponse,
    **doc(
        body=AuthorizeForm,
        errors=[429],
        responses={
            200: {"content": HTML, "description": "The authorization code (out-of-band redirect URI)"},
            302: {"description": "To the redirect URI, with `code` and `state`"},
            401: {"content": HTML, "description": "The sign-in form again: wrong username or password"},
        },
    ),
)
async def authorize(request: Request) -> HTMLResponse | RedirectResponse:
    ctx = context(request)
    form = await parse(request, AuthorizeForm)
    app = await ctx.auth.app_by_client_id(form.client_id)
    if app is None or form.redirect_uri not in app["redirect_uri"].split():
        raise OAuthError("invalid_client", "Unknown client or redirect URI", 400)
    scopes = parse_scopes(form.scope, default="read")
    if not scopes_allowed(scopes, app["scopes"].split()):
        raise OAuthError("invalid_scope", "The requested scope is invalid, unknown, or malformed.")
    client = client_address(request)
    decision = await ctx.rate_limiter.hit(
        "login", client, ctx.settings.login_rate_limit, ctx.settings.rate_limit_window_seconds
    )
    if not decision.allowed:
        raise RateLimited("Too many requests", headers=decision.headers())
    account_id = await ctx.auth.check_password(form.username or "", form.password or "")
    if account_id is None:
        return authorize_page(form, app["name"], "Invalid username/email or password.")
    code = await ctx.auth.create_authorization_code(app, account_id, form.redirect_uri, scopes)
    if form.redirect_uri == OOB:
        return HTMLResponse(f"<!doctype html><p>Authorization code:</p><code id='code'>{code}</code>")
    query = {"code": code, **({"state": form.state} if form.state else {})}
    separator = "&" if "?" in form.redirect_uri else "?"
    return RedirectResponse(f"{form.redirect_uri}{separator}{urlencode(query)}", status_code=302)
