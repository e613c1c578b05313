"""Likes (favourites), shares (reblogs) and threads (context)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from api.auth import context, optional_principal, scoped
from api.entities import status_entities, status_entity
from api.pagination import PageParams, link_header
from api.params import parse
from api.routes.accounts import account_page, parse_id
from services.auth import Principal

router = APIRouter()


class ReblogForm(BaseModel):
    visibility: str = "public"


class ContextQuery(BaseModel):
    after_id: int = Field(default=0, ge=0, lt=2**63)
    limit: int = Field(default=60, ge=1, le=200)


async def _set_liked(request: Request, status_id: str, principal: Principal, liked: bool) -> ORJSONResponse:
    ctx = context(request)
    post = (await ctx.statuses.get(parse_id(status_id), principal.account_id)).original
    await ctx.likes.set_liked(principal.account_id, post, liked)  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.post("/api/v1/statuses/{status_id}/favourite")
async def favourite(
    status_id: str, request: Request, principal: Principal = Depends(scoped("write:favourites"))
) -> ORJSONResponse:
    return await _set_liked(request, status_id, principal, True)


@router.post("/api/v1/statuses/{status_id}/unfavourite")
async def unfavourite(
    status_id: str, request: Request, principal: Principal = Depends(scoped("write:favourites"))
) -> ORJSONResponse:
    return await _set_liked(request, status_id, principal, False)


@router.get("/api/v1/statuses/{status_id}/favourited_by")
async def favourited_by(
    status_id: str, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    post = await ctx.statuses.get(parse_id(status_id), principal.account_id if principal else None)
    rows = await ctx.likes.favourited_by(post.original.id, page.max_id, page.limit)
    return account_page(request, rows, ctx.settings)


@router.get("/api/v1/favourites")
async def favourites(request: Request, principal: Principal = Depends(scoped("read:favourites"))) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    found = await ctx.likes.favourites(principal.account_id, page.max_id, page.since_id, page.limit)  # type: ignore[arg-type]
    headers = link_header(request, found[0][0], found[-1][0], prev=False) if found else {}
    return ORJSONResponse(status_entities([p for _, p in found], ctx.settings), headers=headers)


@router.post("/api/v1/statuses/{status_id}/reblog")
async def reblog(
    status_id: str, request: Request, principal: Principal = Depends(scoped("write:statuses"))
) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, ReblogForm)
    post = await ctx.statuses.reblog(principal.account_id, parse_id(status_id), form.visibility)  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.post("/api/v1/statuses/{status_id}/unreblog")
async def unreblog(
    status_id: str, request: Request, principal: Principal = Depends(scoped("write:statuses"))
) -> ORJSONResponse:
    ctx = context(request)
    post = await ctx.statuses.unreblog(principal.account_id, parse_id(status_id))  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.get("/api/v1/statuses/{status_id}/reblogged_by")
async def reblogged_by(
    status_id: str, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    post = await ctx.statuses.get(parse_id(status_id), principal.account_id if principal else None)
    rows = await ctx.statuses.reblogged_by(post.original.id, page.max_id, page.limit)
    return account_page(request, rows, ctx.settings)


@router.get("/api/v1/statuses/{status_id}/context")
async def thread(
    status_id: str, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    """Ancestors and descendants; long threads page their descendants with ``after_id`` (``Link: next``)."""
    ctx = context(request)
    query = await parse(request, ContextQuery)
    ancestors, descendants, next_after = await ctx.statuses.context(
        parse_id(status_id), principal.account_id if principal else None, query.after_id, query.limit
    )
    headers = {}
    if next_after is not None:
        url = request.url.include_query_params(after_id=next_after, limit=query.limit)
        headers["Link"] = f'<{url}>; rel="next"'
    return ORJSONResponse(
        {
            "ancestors": status_entities(ancestors, ctx.settings),
            "descendants": status_entities(descendants, ctx.settings),
        },
        headers=headers,
    )
