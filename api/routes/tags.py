"""Hashtags: a tag, following it, the tags one follows, and a tag's timeline."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import Field, field_validator

from api.auth import context, optional_principal, scoped
from api.entities import status_entities, tag_entity
from api.openapi import OPTIONAL, doc
from api.pagination import PageParams, link_header
from api.params import parse
from api.schemas import Status, Tag
from redis_store.timelines import PageBounds
from services.auth import Principal
from services.hashtags import is_valid_name

router = APIRouter()
MAX_EXTRA_TAGS = 10  # any[], all[] and none[] each name at most this many tags


def _as_list(value: object) -> object:
    """``any=x`` (one value, no brackets) counts as a list of one, like ``any[]=x``."""
    return [value] if isinstance(value, str) else value


class TagTimelineQuery(PageParams):
    any: list[str] = Field(default_factory=list, max_length=MAX_EXTRA_TAGS, description="Posts with any of these too")
    all: list[str] = Field(default_factory=list, max_length=MAX_EXTRA_TAGS, description="Posts with all of these")
    none: list[str] = Field(default_factory=list, max_length=MAX_EXTRA_TAGS, description="Posts with none of these")
    only_media: bool = False
    local: bool = Field(default=False, description="Every post here is local: changes nothing")
    remote: bool = Field(default=False, description="Every post here is local: an empty list")

    _lists = field_validator("any", "all", "none", mode="before")(_as_list)


@router.get("/api/v1/tags/{name}", **doc(Tag, auth=OPTIONAL, errors=[404]))
async def get_tag(name: str, request: Request, principal: Principal | None = Depends(optional_principal)):
    ctx = context(request)
    view = await ctx.tags.get(name, principal.account_id if principal else None)
    return ORJSONResponse(tag_entity(view, ctx.settings))


@router.post("/api/v1/tags/{name}/follow", **doc(Tag, auth="write:follows", errors=[404, 409]))
async def follow_tag(name: str, request: Request, principal: Principal = Depends(scoped("write:follows"))):
    ctx = context(request)
    view = await ctx.tags.follow(principal.account_id, name)  # type: ignore[arg-type]
    return ORJSONResponse(tag_entity(view, ctx.settings))


@router.post("/api/v1/tags/{name}/unfollow", **doc(Tag, auth="write:follows", errors=[404, 409]))
async def unfollow_tag(name: str, request: Request, principal: Principal = Depends(scoped("write:follows"))):
    ctx = context(request)
    view = await ctx.tags.unfollow(principal.account_id, name)  # type: ignore[arg-type]
    return ORJSONResponse(tag_entity(view, ctx.settings))


@router.get("/api/v1/followed_tags", **doc(list[Tag], query=PageParams, auth="read:follows", paged=True))
async def followed_tags(request: Request, principal: Principal = Depends(scoped("read:follows"))) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    rows = await ctx.tags.followed(principal.account_id, page.max_id, page.since_id, page.min_id, page.limit)  # type: ignore[arg-type]
    headers = link_header(request, rows[0][0], rows[-1][0]) if rows else {}
    return ORJSONResponse([tag_entity(view, ctx.settings) for _, view in rows], headers=headers)


@router.get("/api/v1/timelines/tag/{hashtag}", **doc(list[Status], query=TagTimelineQuery, auth=OPTIONAL, paged=True))
async def tag_timeline(
    hashtag: str, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    """Public posts with the tag (or any of ``any[]``), newest first; a name no post can have gives none."""
    ctx = context(request)
    query = await parse(request, TagTimelineQuery)
    if not is_valid_name(hashtag) or not all(map(is_valid_name, query.all)) or query.remote:
        return ORJSONResponse([])  # no post has such a tag (every post is local)
    posts = await ctx.discovery.tag_timeline(
        hashtag,
        [t for t in query.any if is_valid_name(t)],
        query.all,
        [t for t in query.none if is_valid_name(t)],
        query.only_media,
        PageBounds.from_cursors(query.max_id, query.since_id, query.min_id),
        query.limit,
        principal.account_id if principal else None,
    )
    headers = link_header(request, posts[0].id, posts[-1].id) if posts else {}
    return ORJSONResponse(status_entities(posts, ctx.settings), headers=headers)
