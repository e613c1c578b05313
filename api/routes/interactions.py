"""Likes (favourites), shares (reblogs) and threads (context)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from api.auth import context, optional_principal, scoped
from api.entities import status_entities, status_entity
from api.openapi import OPTIONAL, doc
from api.pagination import PageParams, link_header
from api.params import Id, IdPath, parse, parse_id
from api.routes.accounts import account_page
from api.schemas import Account, Context, Status
from services.auth import Principal
from services.statuses import REBLOG_VISIBILITIES

router = APIRouter()


class ReblogForm(BaseModel):
    visibility: str = Field(default="public", json_schema_extra={"enum": list(REBLOG_VISIBILITIES)})


class ContextQuery(BaseModel):
    after_id: Id | None = Field(default=None, description="Descendants after this one (the `next` link)")
    limit: int = Field(default=60, ge=1, le=200, description="At most this many descendants")


async def _set_liked(request: Request, status_id: str, principal: Principal, liked: bool) -> ORJSONResponse:
    ctx = context(request)
    post = (await ctx.statuses.get(parse_id(status_id), principal.account_id)).original
    await ctx.likes.set_liked(principal.account_id, post, liked)  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.post("/api/v1/statuses/{status_id:id}/favourite", **doc(Status, auth="write:favourites", errors=[404, 429]))
async def favourite(
    status_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:favourites"))
) -> ORJSONResponse:
    return await _set_liked(request, status_id, principal, True)


@router.post("/api/v1/statuses/{status_id:id}/unfavourite", **doc(Status, auth="write:favourites", errors=[404, 429]))
async def unfavourite(
    status_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:favourites"))
) -> ORJSONResponse:
    return await _set_liked(request, status_id, principal, False)


@router.get(
    "/api/v1/statuses/{status_id:id}/favourited_by",
    **doc(list[Account], query=PageParams, auth=OPTIONAL, paged=True, errors=[404]),
)
async def favourited_by(
    status_id: IdPath, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    post = await ctx.statuses.get(parse_id(status_id), principal.account_id if principal else None)
    viewer = principal.account_id if principal else None
    rows = await ctx.likes.favourited_by(post.original.id, page.max_id, page.limit)
    hidden = await ctx.relations.hidden_among(viewer, [account["id"] for _, account in rows])
    rows = [(cursor, account) for cursor, account in rows if account["id"] not in hidden]
    return account_page(request, rows, ctx.settings)


@router.get("/api/v1/favourites", **doc(list[Status], query=PageParams, auth="read:favourites", paged=True))
async def favourites(request: Request, principal: Principal = Depends(scoped("read:favourites"))) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    found = await ctx.likes.favourites(principal.account_id, page.max_id, page.since_id, page.limit)  # type: ignore[arg-type]
    headers = link_header(request, found[0][0], found[-1][0], prev=False) if found else {}
    # Posts the user may no longer see (a block since, a private post of someone unfollowed) are left out.
    visible = await ctx.statuses.visible_ids([p for _, p in found], principal.account_id)
    found = [(cursor, p) for cursor, p in found if p.id in visible]
    return ORJSONResponse(status_entities([p for _, p in found], ctx.settings), headers=headers)


@router.post(
    "/api/v1/statuses/{status_id:id}/reblog",
    **doc(Status, body=ReblogForm, auth="write:statuses", errors=[404, 409, 429]),
)
async def reblog(
    status_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:statuses"))
) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, ReblogForm)
    post = await ctx.statuses.reblog(principal.account_id, parse_id(status_id), form.visibility)  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.post("/api/v1/statuses/{status_id:id}/unreblog", **doc(Status, auth="write:statuses", errors=[404, 409]))
async def unreblog(
    status_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:statuses"))
) -> ORJSONResponse:
    ctx = context(request)
    post = await ctx.statuses.unreblog(principal.account_id, parse_id(status_id))  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.get(
    "/api/v1/statuses/{status_id:id}/reblogged_by",
    **doc(list[Account], query=PageParams, auth=OPTIONAL, paged=True, errors=[404]),
)
async def reblogged_by(
    status_id: IdPath, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    post = await ctx.statuses.get(parse_id(status_id), principal.account_id if principal else None)
    viewer = principal.account_id if principal else None
    rows = await ctx.statuses.reblogged_by(post.original.id, viewer, page.max_id, page.limit)
    return account_page(request, rows, ctx.settings)


@router.get(
    "/api/v1/statuses/{status_id:id}/context",
    **doc(Context, query=ContextQuery, auth=OPTIONAL, paged=True, errors=[404]),
)
async def thread(
    status_id: IdPath, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    """Ancestors and descendants; long threads page their descendants with ``after_id`` (``Link: next``)."""
    ctx = context(request)
    query = await parse(request, ContextQuery)
    ancestors, descendants, next_after = await ctx.statuses.context(
        parse_id(status_id), principal.account_id if principal else None, query.after_id or 0, query.limit
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
