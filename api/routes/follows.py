"""Follow, unfollow, relationships, followers and following."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from api.auth import context, scoped
from api.entities import relationship_entity
from api.pagination import PageParams
from api.params import parse, read_params, validate
from api.routes.accounts import account_page, is_id, parse_id
from services.auth import Principal
from services.errors import Unprocessable

router = APIRouter()


class RelationshipQuery(BaseModel):
    id: list[str] | str = Field(default_factory=list)


@router.get("/api/v1/accounts/relationships")
async def relationships(request: Request, principal: Principal = Depends(scoped("read:follows"))) -> ORJSONResponse:
    query = validate(RelationshipQuery, await read_params(request))
    raw = [query.id] if isinstance(query.id, str) else query.id
    if len(raw) > 100:
        raise Unprocessable("Validation failed: at most 100 ids")
    ids = [int(i) for i in raw if is_id(i)]
    found = await context(request).follows.relationships(principal.account_id, ids)  # type: ignore[arg-type]
    return ORJSONResponse([relationship_entity(r) for r in found])


@router.post("/api/v1/accounts/{account_id}/follow")
async def follow(
    account_id: str, request: Request, principal: Principal = Depends(scoped("write:follows"))
) -> ORJSONResponse:
    ctx = context(request)
    result = await ctx.follows.follow(principal.account_id, parse_id(account_id))  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(result))


@router.post("/api/v1/accounts/{account_id}/unfollow")
async def unfollow(
    account_id: str, request: Request, principal: Principal = Depends(scoped("write:follows"))
) -> ORJSONResponse:
    ctx = context(request)
    result = await ctx.follows.unfollow(principal.account_id, parse_id(account_id))  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(result))


async def _follow_page(account_id: str, request: Request, direction: str) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    rows = await ctx.follows.page(parse_id(account_id), direction, page.max_id, page.since_id, page.limit)
    return account_page(request, rows, ctx.settings)


@router.get("/api/v1/accounts/{account_id}/followers")
async def followers(account_id: str, request: Request) -> ORJSONResponse:
    return await _follow_page(account_id, request, "in")


@router.get("/api/v1/accounts/{account_id}/following")
async def following(account_id: str, request: Request) -> ORJSONResponse:
    return await _follow_page(account_id, request, "out")
