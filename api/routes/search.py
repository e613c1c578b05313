"""Search: ``GET /api/v2/search`` (accounts, hashtags, posts) and ``GET /api/v1/accounts/search``.

Mastodon's rules for who may ask what: anyone may search accounts and
hashtags; posts only a signed-in user (``read:search``), and paging with
``offset`` needs a user too. ``resolve`` and ``exclude_unreviewed`` are
accepted and ignored: every account and post here is local.
"""

from __future__ import annotations

import asyncio
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field, field_validator

from api.auth import context, has_scope, optional_principal, scoped
from api.entities import account_entity, status_entities
from api.openapi import OPTIONAL, doc
from api.params import Id, parse
from api.schemas import Account, SearchResults
from config import Settings
from graph.driver import Row
from services.auth import Principal
from services.errors import Forbidden, Unauthorized
from services.search import MAX_OFFSET

router = APIRouter()


class SearchQuery(BaseModel):
    q: str = Field(min_length=1, max_length=500, description="Words of a caption, or the start of a name")
    type: Literal["accounts", "hashtags", "statuses"] | None = Field(default=None, description="Only this kind")
    limit: int = Field(default=20, ge=1, description="Per kind; at most 40, more is read as 40")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Results to skip (a signed-in user only)")
    following: bool = Field(default=False, description="Accounts: only those the user follows")
    account_id: Id | None = Field(default=None, description="Statuses: only this account's")
    max_id: Id | None = Field(default=None, description="Statuses: older than this id")
    min_id: Id | None = Field(default=None, description="Statuses: newer than this id")
    resolve: bool = Field(default=False, description="Accepted and ignored: everything is local")
    exclude_unreviewed: bool = Field(default=False, description="Accepted and ignored")

    @field_validator("type", "account_id", "max_id", "min_id", mode="before")
    @classmethod
    def empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("limit", mode="after")
    @classmethod
    def clamp(cls, value: int) -> int:
        return min(value, 40)


class AccountSearchQuery(BaseModel):
    q: str = Field(min_length=1, max_length=500, description="The start of a username or display name")
    limit: int = Field(default=40, ge=1, description="At most 80; more is read as 80")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    following: bool = Field(default=False, description="Only accounts the user follows")
    resolve: bool = Field(default=False, description="Accepted and ignored: everything is local")

    @field_validator("limit", mode="after")
    @classmethod
    def clamp(cls, value: int) -> int:
        return min(value, 80)


def hashtag_result(tag: Row, following: bool, settings: Settings) -> dict:
    """A Tag entity for a search result. Its ``history`` is left empty here: the per-day counts are the
    discovery indexer's (``GET /api/v1/tags/:name`` answers them)."""
    name = tag["name"]
    return {
        "id": str(tag["id"]),
        "name": name,
        "url": f"{settings.base_url}/tags/{quote(name)}",
        "history": [],
        "following": following,
    }


async def searcher(request: Request) -> int | None:
    """The signed-in user searching, if any; a user token needs ``read:search``."""
    principal = await optional_principal(request)
    if principal is None or principal.account_id is None:
        return None
    if not has_scope(principal.scopes, "read:search"):
        raise Forbidden("This action is outside the authorized scopes")
    return principal.account_id


@router.get("/api/v2/search", **doc(SearchResults, query=SearchQuery, auth=OPTIONAL, errors=[401, 403]))
async def search(request: Request) -> ORJSONResponse:
    ctx = context(request)
    query = await parse(request, SearchQuery)
    viewer = await searcher(request)
    if viewer is None and query.offset:
        raise Unauthorized("Search queries with offset require a user token")
    wanted = {query.type} if query.type else {"accounts", "hashtags", "statuses"}
    results: dict[str, list] = {"accounts": [], "statuses": [], "hashtags": []}

    async def accounts() -> None:
        found = await ctx.search.accounts(
            query.q, viewer, following=query.following, limit=query.limit, offset=query.offset
        )
        results["accounts"] = [account_entity(a, ctx.settings) for a in found]

    async def statuses(viewer: int) -> None:
        posts = await ctx.search.statuses(
            query.q,
            viewer,
            account_id=query.account_id,
            max_id=query.max_id,
            min_id=query.min_id,
            limit=query.limit,
            offset=query.offset,
        )
        results["statuses"] = status_entities(posts, ctx.settings)

    async def hashtags() -> None:
        found = await ctx.search.hashtags(query.q, viewer, limit=query.limit, offset=query.offset)
        results["hashtags"] = [hashtag_result(tag, following, ctx.settings) for tag, following in found]

    kinds = [accounts()] if "accounts" in wanted else []
    if "hashtags" in wanted:
        kinds.append(hashtags())
    if "statuses" in wanted and viewer is not None:
        kinds.append(statuses(viewer))
    await asyncio.gather(*kinds)  # each kind reads its own stores: side by side
    return ORJSONResponse(results)


@router.get("/api/v1/accounts/search", **doc(list[Account], query=AccountSearchQuery, auth="read:accounts"))
async def account_search(request: Request, principal: Principal = Depends(scoped("read:accounts"))) -> ORJSONResponse:
    ctx = context(request)
    query = await parse(request, AccountSearchQuery)
    accounts = await ctx.search.accounts(
        query.q, principal.account_id, following=query.following, limit=query.limit, offset=query.offset
    )
    return ORJSONResponse([account_entity(a, ctx.settings) for a in accounts])
