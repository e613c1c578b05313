"""Blocks, mutes and follow requests (Mastodon's routes)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from api.auth import context, scoped
from api.entities import relationship_entity
from api.openapi import doc
from api.pagination import PageParams
from api.params import IdPath, parse, parse_id
from api.routes.accounts import account_page
from api.schemas import Account, Relationship
from services.auth import Principal

router = APIRouter()


class MuteForm(BaseModel):
    notifications: bool = Field(default=True, description="Mute the account's notifications too")
    duration: int = Field(default=0, ge=0, description="Seconds until the mute ends by itself; 0: no end")


@router.post("/api/v1/accounts/{account_id:id}/block", **doc(Relationship, auth="write:blocks", errors=[403, 404, 409]))
async def block(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:blocks"))
) -> ORJSONResponse:
    ctx = context(request)
    found = await ctx.safety.block(principal.account_id, parse_id(account_id))  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(found))


@router.post(
    "/api/v1/accounts/{account_id:id}/unblock", **doc(Relationship, auth="write:blocks", errors=[403, 404, 409])
)
async def unblock(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:blocks"))
) -> ORJSONResponse:
    ctx = context(request)
    found = await ctx.safety.unblock(principal.account_id, parse_id(account_id))  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(found))


@router.post(
    "/api/v1/accounts/{account_id:id}/mute", **doc(Relationship, body=MuteForm, auth="write:mutes", errors=[403, 404])
)
async def mute(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:mutes"))
) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, MuteForm)
    found = await ctx.safety.mute(principal.account_id, parse_id(account_id), form.notifications, form.duration)  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(found))


@router.post("/api/v1/accounts/{account_id:id}/unmute", **doc(Relationship, auth="write:mutes", errors=[403, 404]))
async def unmute(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:mutes"))
) -> ORJSONResponse:
    ctx = context(request)
    found = await ctx.safety.unmute(principal.account_id, parse_id(account_id))  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(found))


@router.get("/api/v1/blocks", **doc(list[Account], query=PageParams, auth="read:blocks", paged=True))
async def blocks(request: Request, principal: Principal = Depends(scoped("read:blocks"))) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    rows = await ctx.safety.blocks(principal.account_id, page.max_id, page.since_id, page.limit)  # type: ignore[arg-type]
    return account_page(request, rows, ctx.settings)


@router.get("/api/v1/mutes", **doc(list[Account], query=PageParams, auth="read:mutes", paged=True))
async def mutes(request: Request, principal: Principal = Depends(scoped("read:mutes"))) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    rows = await ctx.safety.mutes(principal.account_id, page.max_id, page.since_id, page.limit)  # type: ignore[arg-type]
    return account_page(request, rows, ctx.settings)


@router.get("/api/v1/follow_requests", **doc(list[Account], query=PageParams, auth="read:follows", paged=True))
async def follow_requests(request: Request, principal: Principal = Depends(scoped("read:follows"))) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    rows = await ctx.follows.requests(principal.account_id, page.max_id, page.since_id, page.limit)  # type: ignore[arg-type]
    return account_page(request, rows, ctx.settings)


@router.post(
    "/api/v1/follow_requests/{account_id:id}/authorize",
    **doc(Relationship, auth="write:follows", errors=[404, 409]),
)
async def authorize(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:follows"))
) -> ORJSONResponse:
    ctx = context(request)
    requester = parse_id(account_id)
    await ctx.follows.authorize(principal.account_id, requester)  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(await ctx.safety.relationship(principal.account_id, requester)))  # type: ignore[arg-type]


@router.post("/api/v1/follow_requests/{account_id:id}/reject", **doc(Relationship, auth="write:follows", errors=[404]))
async def reject(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:follows"))
) -> ORJSONResponse:
    ctx = context(request)
    requester = parse_id(account_id)
    await ctx.follows.reject(principal.account_id, requester)  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(await ctx.safety.relationship(principal.account_id, requester)))  # type: ignore[arg-type]
