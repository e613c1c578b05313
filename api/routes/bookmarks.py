"""Bookmarks (Mastodon's): bookmark, un-bookmark, the user's list."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse

from api.auth import context, scoped
from api.entities import status_entities, status_entity
from api.openapi import doc
from api.pagination import PageParams, link_header
from api.params import IdPath, parse, parse_id
from api.schemas import Status
from services.auth import Principal

router = APIRouter()


async def _set(request: Request, status_id: str, principal: Principal, bookmarked: bool) -> ORJSONResponse:
    ctx = context(request)
    post = (await ctx.statuses.get(parse_id(status_id), principal.account_id)).original  # 404 if not visible
    await ctx.bookmarks.set_bookmarked(principal.account_id, post, bookmarked)  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.post("/api/v1/statuses/{status_id:id}/bookmark", **doc(Status, auth="write:bookmarks", errors=[404]))
async def bookmark(
    status_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:bookmarks"))
) -> ORJSONResponse:
    return await _set(request, status_id, principal, True)


@router.post("/api/v1/statuses/{status_id:id}/unbookmark", **doc(Status, auth="write:bookmarks", errors=[404]))
async def unbookmark(
    status_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:bookmarks"))
) -> ORJSONResponse:
    return await _set(request, status_id, principal, False)


@router.get("/api/v1/bookmarks", **doc(list[Status], query=PageParams, auth="read:bookmarks", paged=True))
async def bookmarks(request: Request, principal: Principal = Depends(scoped("read:bookmarks"))) -> ORJSONResponse:
    """The most recently bookmarked first; pages by bookmark (``Link: next``), not by post id."""
    ctx = context(request)
    page = await parse(request, PageParams)
    found = await ctx.bookmarks.bookmarks(principal.account_id, page.max_id, page.since_id, page.limit)  # type: ignore[arg-type]
    # Posts the user may no longer see (a block since, a private post of someone unfollowed) are left out.
    visible = await ctx.statuses.visible_ids([p for _, p in found], principal.account_id)
    headers = link_header(request, found[0][0], found[-1][0], prev=False) if found else {}
    found = [(cursor, p) for cursor, p in found if p.id in visible]
    return ORJSONResponse(status_entities([p for _, p in found], ctx.settings), headers=headers)
