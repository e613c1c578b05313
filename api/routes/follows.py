"""Follow, unfollow, relationships, followers and following."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from api.auth import context, scoped
from api.entities import relationship_entity
from api.openapi import doc
from api.pagination import PageParams
from api.params import IdPath, is_id, parse, parse_id, read_params, validate
from api.routes.accounts import account_page
from api.schemas import Account, Relationship
from services.auth import Principal
from services.errors import Unprocessable

router = APIRouter()


class RelationshipQuery(BaseModel):
    id: list[str] | str = Field(default_factory=list, description="Account ids, at most 100; unknown ones are left out")


@router.get("/api/v1/accounts/relationships", **doc(list[Relationship], query=RelationshipQuery, auth="read:follows"))
async def relationships(request: Request, principal: Principal = Depends(scoped("read:follows"))) -> ORJSONResponse:
    query = validate(RelationshipQuery, await read_params(request))
    raw = [query.id] if isinstance(query.id, str) else query.id
    if len(raw) > 100:
        raise Unprocessable("Validation failed: at most 100 ids")
    ids = [int(i) for i in raw if is_id(i)]
    found = await context(request).safety.relationships(principal.account_id, ids)  # type: ignore[arg-type]
    return ORJSONResponse([relationship_entity(r) for r in found])


@router.post(
    "/api/v1/accounts/{account_id:id}/follow",
    **doc(Relationship, auth="write:follows", errors=[403, 404, 409, 429]),
)
async def follow(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:follows"))
) -> ORJSONResponse:
    ctx = context(request)
    target = parse_id(account_id)
    await ctx.follows.follow(principal.account_id, target)  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(await ctx.safety.relationship(principal.account_id, target)))  # type: ignore[arg-type]


@router.post("/api/v1/accounts/{account_id:id}/unfollow", **doc(Relationship, auth="write:follows", errors=[404, 409]))
async def unfollow(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:follows"))
) -> ORJSONResponse:
    ctx = context(request)
    target = parse_id(account_id)
    await ctx.follows.unfollow(principal.account_id, target)  # type: ignore[arg-type]
    return ORJSONResponse(relationship_entity(await ctx.safety.relationship(principal.account_id, target)))  # type: ignore[arg-type]


FOLLOW_PAGE_DOC = doc(list[Account], query=PageParams, paged=True, errors=[404])


async def _follow_page(account_id: str, request: Request, direction: str) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    rows = await ctx.follows.page(parse_id(account_id), direction, page.max_id, page.since_id, page.limit)
    return account_page(request, rows, ctx.settings)


@router.get("/api/v1/accounts/{account_id:id}/followers", **FOLLOW_PAGE_DOC)
async def followers(account_id: IdPath, request: Request) -> ORJSONResponse:
    return await _follow_page(account_id, request, "in")


@router.get("/api/v1/accounts/{account_id:id}/following", **FOLLOW_PAGE_DOC)
async def following(account_id: IdPath, request: Request) -> ORJSONResponse:
    return await _follow_page(account_id, request, "out")
