"""Timelines: the home feed."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse

from api.auth import context, scoped
from api.entities import status_entities
from api.openapi import doc
from api.pagination import PageParams, link_header
from api.params import parse
from api.schemas import Status
from services.auth import Principal

router = APIRouter()


@router.get("/api/v1/timelines/home", **doc(list[Status], query=PageParams, auth="read:statuses", paged=True))
async def home(request: Request, principal: Principal = Depends(scoped("read:statuses"))) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    posts = await ctx.home.read(principal.account_id, page.max_id, page.since_id, page.min_id, page.limit)  # type: ignore[arg-type]
    headers = link_header(request, posts[0].status["id"], posts[-1].status["id"]) if posts else {}
    return ORJSONResponse(status_entities(posts, ctx.settings), headers=headers)
