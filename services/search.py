"""Search (``GET /api/v2/search``, ``GET /api/v1/accounts/search``): accounts, hashtags and posts.

* Accounts: username or display-name prefix, from the graph's indexes
  (``graph.search``), at most ``ACCOUNT_CANDIDATES`` per kind of prefix,
  ranked: exact name first, then accounts the viewer follows, then by
  followers. ``@name`` and ``name@this-domain`` mean ``name``.
* Statuses: every word of the query in the caption, newest first, only for a
  signed-in viewer and only what they may see: public and unlisted posts,
  their own, and private ones of authors they follow (never direct ones).
  The words are looked up in the search engine behind ``StatusIndex``: a
  SQLite FTS5 index owned by the stream-consumer host (``actors.search``,
  ``actors.post_index`` says why that engine), which applies the visibility
  rule itself, so ``offset`` pages count only visible posts. The viewer's
  followed authors come from the graph, at most ``FOLLOWED_LIMIT`` of them.
* Hashtags: by name prefix (``#`` and case ignored, names compared in the
  stored form: NFKC, lower case), at most ``TAG_CANDIDATES`` from the graph's
  unique index on ``Tag.name``, ranked: the exact name first, then by the
  last time a public post used the tag (``tags:{discovery}:recent``, the sorted set the
  discovery indexer keeps in Redis), then by name.

Posts and accounts are hydrated as everywhere else (``services.hydrate``),
so a post deleted after the index answered is simply left out. Accounts that
block the viewer or that the viewer blocks are left out, and so are posts by
them or by accounts the viewer mutes (``services.relations``, one cached
look-up per page); like Mastodon's search, such a page comes back short
rather than reading further.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Protocol

import ray
import redis.asyncio as aioredis

from actors.post_index import StatusQuery
from actors.registry import SEARCH_INDEXER, host_name
from config import Settings
from graph.driver import Row
from graph.follows import FollowGraph
from graph.search import AccountSearchGraph
from redis_store.discovery import TAGS_RECENT
from redis_store.relations import Flags
from services.availability import REDIS_DOWN, mark_degraded
from services.hydrate import HydratedStatus, Hydrator
from services.relations import RelationService

ACCOUNT_CANDIDATES = 200  # accounts read per kind of prefix before ranking
TAG_CANDIDATES = 200  # tags read by prefix before ranking
FOLLOWED_LIMIT = 5000  # followed authors whose private posts a search can find
MAX_OFFSET = 10_000  # deeper pages cost the engine more for what no one reads


class StatusIndex(Protocol):
    """The status search engine: ids of matching posts the query's viewer may see, newest first."""

    async def search(self, query: StatusQuery) -> list[int]: ...


class ActorStatusIndex:
    """The index in the process that owns it (``actors.search``), one actor call per query."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._host: ray.actor.ActorHandle | None = None

    async def search(self, query: StatusQuery) -> list[int]:
        if self._host is None:
            name = host_name(SEARCH_INDEXER, self.settings)
            self._host = ray.get_actor(name, namespace=self.settings.ray_namespace)
        return await self._host.search_statuses.remote(query)


@dataclass
class SearchResults:
    accounts: list[Row] = field(default_factory=list)
    statuses: list[HydratedStatus] = field(default_factory=list)
    hashtags: list[Row] = field(default_factory=list)


def account_prefix(query: str, domain: str) -> str | None:
    """The lower-cased start of a name an account query looks for, or None if it names an account elsewhere.

    ``@name`` and ``name@this-domain`` mean ``name``; anything else is taken whole (a display name may have
    spaces).
    """
    text = query.strip().removeprefix("@")
    name, at, host = text.partition("@")
    if at and host.lower() != domain.lower():
        return None
    return name.strip().lower() or None


class SearchService:
    def __init__(
        self,
        settings: Settings,
        accounts: AccountSearchGraph,
        follows: FollowGraph,
        hydrator: Hydrator,
        index: StatusIndex,
        relations: RelationService,
        redis: aioredis.Redis,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.relations = relations
        self.accounts_graph = accounts
        self.follows = follows
        self.hydrator = hydrator
        self.index = index

    async def accounts(
        self, query: str, viewer_id: int | None, *, following: bool, limit: int, offset: int
    ) -> list[Row]:
        """Accounts by name prefix: exact first, then followed by the viewer, then by followers."""
        prefix = account_prefix(query, self.settings.instance_domain)
        if not prefix:
            return []
        found = await self.accounts_graph.by_prefix(prefix, ACCOUNT_CANDIDATES)
        hidden = await self.relations.hidden_among(viewer_id, [a["id"] for a in found])
        found = [a for a in found if a["id"] not in hidden]
        followed = await self.accounts_graph.followed_among(viewer_id, [a["id"] for a in found]) if viewer_id else set()
        if following:
            found = [a for a in found if a["id"] in followed]

        def rank(account: Row) -> tuple:
            exact = prefix in (account["username"].lower(), (account.get("display_name") or "").lower())
            return (not exact, account["id"] not in followed, -(account.get("followers_count") or 0), account["id"])

        return sorted(found, key=rank)[offset : offset + limit]

    async def hashtags(self, query: str, *, limit: int, offset: int) -> list[Row]:
        """Tags by name prefix: the exact name first, then the most recently used."""
        prefix = unicodedata.normalize("NFKC", query.strip().removeprefix("#")).lower()
        if not prefix or any(c.isspace() for c in prefix):
            return []
        found = await self.accounts_graph.tags_by_prefix(prefix, TAG_CANDIDATES)
        names = [t["name"] for t in found]
        try:
            last_used = dict(zip(names, await self.redis.zmscore(TAGS_RECENT, names), strict=True)) if names else {}
        except REDIS_DOWN:
            mark_degraded("redis")
            last_used = {}
        ranked = sorted(found, key=lambda t: (t["name"] != prefix, -(last_used.get(t["name"]) or 0), t["name"]))
        return ranked[offset : offset + limit]

    async def statuses(
        self,
        query: str,
        viewer_id: int,
        *,
        account_id: int | None,
        max_id: int | None,
        min_id: int | None,
        limit: int,
        offset: int,
    ) -> list[HydratedStatus]:
        """Posts with every word of ``query`` in the caption that the viewer may see, newest first."""
        followed = await self.follows.followed_authors(viewer_id, FOLLOWED_LIMIT)
        ids = await self.index.search(
            StatusQuery(query, viewer_id, followed, account_id, max_id, min_id, limit, min(offset, MAX_OFFSET))
        )
        posts = await self.hydrator.hydrate(ids, viewer_id=viewer_id)
        facts = await self.relations.flags(viewer_id, {p.status["account_id"] for p in posts})
        now = self.relations.now_ms()
        return [p for p in posts if not _blocked_or_muted(facts.get(p.status["account_id"]), now)]


def _blocked_or_muted(flags: Flags | None, now_ms: int) -> bool:
    return flags is not None and (flags.hidden or flags.muted_at(now_ms))
