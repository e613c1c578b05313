"""Discovery: the public timeline, trending tags and posts, and the explore grid."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field, field_validator

from api.auth import context, optional_principal
from api.entities import status_entities, tag_entity
from api.openapi import OPTIONAL, doc
from api.pagination import PageParams, link_header
from api.params import parse
from api.schemas import Status, Tag
from redis_store.timelines import PageBounds
from services.auth import Principal

router = APIRouter()


class PublicTimelineQuery(PageParams):
    local: bool = Field(default=False, description="Every post here is local: changes nothing")
    remote: bool = Field(default=False, description="Every post here is local: an empty list")
    only_media: bool = False


def _trends_query(default: int, most: int) -> type[BaseModel]:
    """Mastodon's trends paging: ``offset`` and a ``limit`` clamped to ``most``."""

    class TrendsQuery(BaseModel):
        offset: int = Field(default=0, ge=0, le=10_000)
        limit: int = Field(default=default, ge=1, description=f"At most {most}; more is read as {most}")

        @field_validator("limit", mode="after")
        @classmethod
        def clamp(cls, value: int) -> int:
            return min(value, most)

    TrendsQuery.__name__ = TrendsQuery.__qualname__ = f"TrendsQuery{default}x{most}"
    return TrendsQuery


TrendingTagsQuery = _trends_query(10, 20)
TrendingStatusesQuery = _trends_query(20, 40)


class ExploreQuery(BaseModel):
    limit: int = Field(default=20, ge=1, description="At most 40; more is read as 40")

    @field_validator("limit", mode="after")
    @classmethod
    def clamp(cls, value: int) -> int:
        return min(value, 40)


def viewer(principal: Principal | None) -> int | None:
    return principal.account_id if principal else None


def offset_link(request: Request, offset: int, limit: int, count: int) -> dict[str, str]:
    """Offset paging's ``next`` link, while a page comes back full."""
    if count < limit:
        return {}
    url = request.url.remove_query_params(["offset"]).include_query_params(offset=offset + limit)
    return {"Link": f'<{url}>; rel="next"'}


@router.get("/api/v1/timelines/public", **doc(list[Status], query=PublicTimelineQuery, auth=OPTIONAL, paged=True))
async def public_timeline(request: Request, principal: Principal | None = Depends(optional_principal)):
    ctx = context(request)
    query = await parse(request, PublicTimelineQuery)
    posts = await ctx.discovery.public_timeline(
        query.only_media,
        query.remote,
        PageBounds.from_cursors(query.max_id, query.since_id, query.min_id),
        query.limit,
        viewer(principal),
    )
    headers = link_header(request, posts[0].id, posts[-1].id) if posts else {}
    return ORJSONResponse(status_entities(posts, ctx.settings), headers=headers)


async def _trending_tags(request: Request, principal: Principal | None) -> ORJSONResponse:
    ctx = context(request)
    query = await parse(request, TrendingTagsQuery)
    views = await ctx.discovery.trending_tags(query.offset, query.limit, viewer(principal))  # type: ignore[attr-defined]
    headers = offset_link(request, query.offset, query.limit, len(views))  # type: ignore[attr-defined]
    return ORJSONResponse([tag_entity(v, ctx.settings) for v in views], headers=headers)


TRENDING_TAGS_DOC = doc(list[Tag], query=TrendingTagsQuery, auth=OPTIONAL, paged=True)


@router.get("/api/v1/trends/tags", **TRENDING_TAGS_DOC)
async def trending_tags(request: Request, principal: Principal | None = Depends(optional_principal)):
    """Tags used by more accounts today than yesterday (Mastodon's trends), best first."""
    return await _trending_tags(request, principal)


@router.get("/api/v1/trends", **TRENDING_TAGS_DOC)
async def trends(request: Request, principal: Principal | None = Depends(optional_principal)):
    """Before Mastodon 3.5, the trending tags' path."""
    return await _trending_tags(request, principal)


@router.get("/api/v1/trends/statuses", **doc(list[Status], query=TrendingStatusesQuery, auth=OPTIONAL, paged=True))
async def trending_statuses(request: Request, principal: Principal | None = Depends(optional_principal)):
    """Public posts gathering likes and shares fast, best first."""
    ctx = context(request)
    query = await parse(request, TrendingStatusesQuery)
    posts = await ctx.discovery.trending_statuses(query.offset, query.limit, viewer(principal))  # type: ignore[attr-defined]
    headers = offset_link(request, query.offset, query.limit, len(posts))  # type: ignore[attr-defined]
    return ORJSONResponse(status_entities(posts, ctx.settings), headers=headers)


@router.get("/api/v1/discover/posts", **doc(list[Status], query=ExploreQuery, auth=OPTIONAL))
async def explore(request: Request, principal: Principal | None = Depends(optional_principal)):
    """The explore grid (Pixelfed's path): popular recent photo posts, by accounts the viewer does not follow."""
    ctx = context(request)
    query = await parse(request, ExploreQuery)
    posts = await ctx.discovery.explore(query.limit, viewer(principal))
    return ORJSONResponse(status_entities(posts, ctx.settings))
