"""The benchmarks' baseline: raygram's mix endpoints on bare aiohttp, doing the same store work and nothing else.

What a benchmark compares raygram against must do the same work, or the
ratio flatters one side. This server answers the four requests of the mix
(``bench/mix_bench.py``) and the likes benchmark from the same Redis and
the same graph the stack uses, with the same keys, the same TTLs, the same
record formats, the same Lua scripts (``redis_store``), the same graph
queries (``graph``) and the same entity code (``api.entities``,
``MediaService.render``), so the JSON is the same byte for byte and a cache
miss costs a graph read here as it does there. What it leaves out is
raygram's framework and layering: no Ray Serve, HAProxy, FastAPI or
pydantic, no service objects, no actor hops (it makes the inbox actor's
store calls itself), and no read of something the request already holds
(``DIFFERENCES``, which ``mix_bench`` prints with its figures).

* ``GET /api/v1/timelines/home``: the token's cached principal (graph on a
  miss), ``TimelineStore.read_page`` (inbox plus followed celebrities'
  outboxes, marks the user active), a rebuild from the graph for an
  inactive user, then hydration: statuses (with their unsigned
  attachments, as ``services.hydrate`` caches them) and accounts
  read-aside (``status:``/``account:`` MGET, the graph on a miss, cached
  with their TTL), attachment URLs signed, the like view
  (``LikeStore.view``, loading favourites and reblogs from the graph after
  a cold start, the graph for posts older than the set).
* ``GET /api/v1/accounts/{id}/statuses``: the principal, the author
  read-aside, whether the viewer follows the author (one graph query), the
  author's page from the graph with its attachments (one more), the page
  cached, the like view.
* ``POST /api/v1/statuses`` (form or JSON): the principal, the post rate
  limit (same key and limit), the status and its media attached in one
  graph transaction (``StatusGraph.create`` with
  ``MediaService.attach_media_tx``), the author's cached account dropped,
  the post in the author's own inbox (``TimelineStore.deliver``, what the
  inbox actor calls), ``status.created`` on the event stream (so the
  stack's fan-out workers deliver it as they deliver raygram's), the
  status cached with its attachments, the author read-aside.
* ``POST /api/v1/statuses/{id}/favourite``: the principal, the post
  hydrated as above (with its like view), the like through
  ``LikeStore.change`` with the rate limit counted in the same Lua call
  (same ``like.created`` event the stack's persister and notifier consume;
  favourites loaded from the graph first when absent, the graph asked
  when they are partial).

Run as ``python -m bench.baseline_server --port P``; every other setting comes
from the environment the stack exported (``Stack.start_services``), as a
Serve replica's does. ``--redis-url``, ``--base-url`` and ``--stream-maxlen``
override three of them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from api.entities import status_entities, status_entity
from config import Settings
from graph.accounts import AccountGraph
from graph.driver import GraphClient
from graph.follows import FollowGraph
from graph.likes import LikeGraph
from graph.statuses import StatusGraph, new_status
from ids import SnowflakeGenerator, min_id_at_ms
from redis_store.cache import RecordCache
from redis_store.client import claim_id_generator, redis_from
from redis_store.events import EventStream
from redis_store.likes import LikeStore, PageView
from redis_store.ratelimit import OverLimit, RateLimit, RateLimiter
from redis_store.timelines import PageBounds, TimelineStore
from services.auth import REVOKED, token_hash
from services.errors import Unprocessable
from services.feed import REBUILD_FOLLOWING_LIMIT, dedupe_reblogs
from services.hydrate import ATTACHMENTS, HydratedStatus, assemble
from services.media import MediaService

Row = dict[str, Any]
PAGE_LIMIT, PAGE_MAX = 20, 40
# Where raygram's work differs from this server's, besides the framework (keep in step with raygram's code).
DIFFERENCES = (
    "raygram's profile read asks whether the viewer follows the author (the author's follower list in Redis, "
    "the graph without one); the baseline does not",
    "raygram's post reads the like view of a post nobody can have liked yet, and parses its tags and mentions; "
    "the baseline does neither",
    "raygram's pages look up the viewer's blocks and mutes and bookmarks (Redis, once a page); the baseline does not",
    "raygram writes the author's own inbox, and an inactive reader's rebuilt inbox, through the inbox actor "
    "(one Ray call); the baseline makes the actor's Redis calls itself",
    "raygram checks the token's scopes; the baseline only that it acts for a user",
    "follows are not served by the baseline: the mix leaves them out",
)


class Refused(Exception):
    """An answer other than 200: status and message, sent as raygram sends errors."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_response(body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


def int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise Refused(422, f"{name} must be a number")
    return int(raw)


def link_header(request: web.Request, newest: int, oldest: int, prev: bool = True) -> dict[str, str]:
    """Mastodon's ``Link`` header built from the request's own URL, as ``api.pagination`` builds it."""
    query = {k: v for k, v in request.query.items() if k not in ("max_id", "since_id", "min_id")}
    base = str(request.url.with_query(query))
    separator = "&" if "?" in base else "?"
    links = [f'<{base}{separator}max_id={oldest}>; rel="next"']
    if prev:
        links.append(f'<{base}{separator}min_id={newest}>; rel="prev"')
    return {"Link": ", ".join(links)}


class Baseline:
    """The store objects, built once per process as a replica builds its context."""

    def __init__(self, settings: Settings, ids: SnowflakeGenerator) -> None:
        self.settings = s = settings
        self.redis = redis_from(s)
        self.graph = GraphClient(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)
        self.ids = ids
        self.accounts = AccountGraph(self.graph)
        self.follows = FollowGraph(self.graph)
        self.statuses = StatusGraph(self.graph)
        self.like_graph = LikeGraph(self.graph)
        self.status_cache = RecordCache(self.redis, "status", s.status_cache_seconds)
        self.account_cache = RecordCache(self.redis, "account", s.account_cache_seconds)
        self.timelines = TimelineStore(self.redis, s.timeline_max, s.outbox_max, s.inactive_days)
        self.likes = LikeStore(self.redis, s)
        self.limiter = RateLimiter(self.redis)
        self.events = EventStream(self.redis, maxlen=s.event_stream_max)
        self.media = MediaService(s, self.graph, ids)  # for its attachment query, entity and attach transaction

    async def close(self) -> None:
        await self.graph.close()
        await self.redis.aclose()

    # -- shared steps ---------------------------------------------------------------

    async def viewer(self, request: web.Request) -> int:
        """The calling user from the token cache raygram fills (the graph on a miss, then cached)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "The access token is invalid")
        hashed = token_hash(token.strip())
        cached = await self.redis.get(f"token:{hashed}")
        if cached == REVOKED:
            raise Refused(401, "The access token was revoked")
        if cached is not None:
            data = orjson.loads(cached)
        else:
            found = await self.accounts.get_token(hashed)
            if found is None:
                raise Refused(401, "The access token is invalid")
            data = {"app_id": found["app_id"], "account_id": found.get("account_id"), "scopes": found["scopes"]}
            await self.redis.set(f"token:{hashed}", orjson.dumps(data), ex=self.settings.token_cache_seconds, nx=True)
        if data["account_id"] is None:
            raise Refused(403, "This method requires an authenticated user")
        return int(data["account_id"])

    def limit(self, action: str, account_id: int) -> RateLimit:
        s = self.settings
        return RateLimit.of(
            action, str(account_id), getattr(s, f"{action}_rate_limit"), getattr(s, f"{action}_rate_window")
        )

    async def rate_limit(self, action: str, account_id: int) -> None:
        if not (await self.limiter.count(self.limit(action, account_id))).allowed:
            raise Refused(429, f"Rate limit exceeded for {action}s; retry later")

    @staticmethod
    async def read_aside(
        cache: RecordCache, load: Callable[[list[int]], Awaitable[dict[int, Row]]], ids: list[int]
    ) -> dict[int, Row]:
        """Records from the cache (one MGET), the misses from the graph (one query), then cached."""
        unique = list(dict.fromkeys(ids))
        found = await cache.get_many(unique)
        missing = [i for i in unique if i not in found]
        if missing:
            loaded = await load(missing)
            await cache.put_many(loaded)
            found.update(loaded)
        return found

    async def load_statuses(self, ids: list[int]) -> dict[int, Row]:
        """Status records from the graph, with their attachments (the cache's record format)."""
        rows = await self.statuses.get_many(ids)
        await self.add_attachments(list(rows.values()))
        return rows

    async def add_attachments(self, rows: list[Row]) -> list[Row]:
        """Give the records with media their unsigned attachments (one graph query); returns those completed."""
        wanting = [row for row in rows if row.get("media_ids") and ATTACHMENTS not in row]
        if wanting:
            found = await self.media.attachment_records([m for row in wanting for m in row["media_ids"]])
            for row in wanting:
                row[ATTACHMENTS] = [found[m] for m in row["media_ids"] if m in found]
        return wanting

    async def page_view(self, user_id: int, status_ids: list[int]) -> PageView:
        """Like counts and the viewer's own likes and reblogs of a page (loaded from the graph when cold)."""
        view = await self.likes.view(user_id, status_ids)
        if not (view.favourites_loaded and view.reblogs_loaded):
            if not await self.likes.favourites_loaded(user_id):
                limit = self.settings.favourites_load_limit
                likes = await self.like_graph.likes_of_user(user_id, limit + 1)
                await self.likes.load_favourites(user_id, likes[:limit], complete=len(likes) <= limit)
            if not await self.likes.reblogs_loaded(user_id):
                pairs = await self.statuses.reblogs_by(user_id, self.settings.favourites_load_limit)
                await self.likes.load_reblogs(user_id, pairs)
            view = await self.likes.view(user_id, status_ids)
        if view.unknown:
            liked, _ = await self.like_graph.viewer_state(user_id, list(view.unknown))
            view = dataclasses.replace(view, liked=view.liked | liked)
        return view

    async def hydrate(
        self, ids: list[int], viewer_id: int, rows: dict[int, Row] | None = None, view: bool = True
    ) -> list[HydratedStatus]:
        """Posts for ``ids`` in order (deleted ones skipped); ``rows`` are statuses the caller already holds."""
        statuses = dict(rows) if rows is not None else await self.read_aside(self.status_cache, self.load_statuses, ids)
        originals = [s["reblog_of_id"] for s in statuses.values() if s.get("reblog_of_id") is not None]
        if missing := [o for o in originals if o not in statuses]:
            statuses.update(await self.read_aside(self.status_cache, self.load_statuses, missing))
        if completed := await self.add_attachments(list(statuses.values())):  # cached without them: cache again
            await self.status_cache.put_many({r["id"]: r for r in completed})
        accounts = await self.read_aside(
            self.account_cache, self.accounts.get_accounts, [s["account_id"] for s in statuses.values()]
        )
        page = await self.page_view(viewer_id, list(statuses)) if view else PageView(True, True, {}, set(), set())

        return assemble(ids, statuses, accounts, self.media.render, page.counts, page.liked, page.reblogged)

    # -- the routes ----------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        user_id = await self.viewer(request)
        limit = min(int_param(request, "limit") or PAGE_LIMIT, PAGE_MAX)
        max_id, since_id, min_id = (int_param(request, n) for n in ("max_id", "since_id", "min_id"))
        bounds = PageBounds.from_cursors(max_id, since_id, min_id)
        was_active, ids = await self.timelines.read_page(user_id, bounds, limit + 5)
        if not was_active:
            await self.rebuild(user_id)
            _, ids = await self.timelines.read_page(user_id, bounds, limit + 5)
        posts = dedupe_reblogs(await self.hydrate(ids, user_id))
        posts = posts[:limit] if not bounds.ascending else posts[-limit:]
        headers = link_header(request, posts[0].id, posts[-1].id) if posts else {}
        return json_response(status_entities(posts, self.settings), headers)

    async def rebuild(self, user_id: int) -> None:
        """What ``FeedManager.populate_home`` has the inbox actor write, written here directly."""
        authors = await self.follows.followed_authors(user_id, REBUILD_FOLLOWING_LIMIT)
        ready = await self.timelines.celebrities_ready(authors)
        celebrities = [a for a, is_celebrity in zip(authors, ready, strict=True) if is_celebrity]
        ordinary = [a for a, is_celebrity in zip(authors, ready, strict=True) if not is_celebrity]
        since = min_id_at_ms(int(time.time() * 1000) - self.settings.rebuild_window_days * 86_400_000)
        entries = await self.statuses.recent_entries([*ordinary, user_id], since, self.settings.timeline_max)
        await self.timelines.deliver(entries[::-1], [user_id])
        await self.timelines.finish_rebuild(user_id, celebrities)

    async def profile(self, request: web.Request) -> web.Response:
        user_id = await self.viewer(request)
        account_id = int(request.match_info["account_id"])
        limit = min(int_param(request, "limit") or PAGE_LIMIT, PAGE_MAX)
        max_id, since_id, min_id = (int_param(request, n) for n in ("max_id", "since_id", "min_id"))
        if account_id not in await self.read_aside(self.account_cache, self.accounts.get_accounts, [account_id]):
            raise Refused(404, "Record not found")
        may_see_private = user_id == account_id or await self.follows_author(user_id, account_id)
        rows = await self.statuses.by_author(
            account_id,
            max_id,
            since_id,
            min_id,
            limit,
            request.query.get("exclude_replies") == "true",
            include_private=may_see_private,
        )
        if not rows:
            return json_response([])
        await self.add_attachments(rows)
        await self.status_cache.put_many({r["id"]: r for r in rows})
        posts = await self.hydrate([r["id"] for r in rows], user_id, rows={r["id"]: r for r in rows})
        headers = link_header(request, posts[0].id, posts[-1].id) if posts else {}
        return json_response(status_entities(posts, self.settings), headers)

    async def follows_author(self, user_id: int, author_id: int) -> bool:
        """The one relationship a profile page needs (``FollowGraph.relationships`` also asks the reverse)."""
        rows = await self.graph.read(
            "MATCH (:Account {id: $me})-[:FOLLOWS]->(t:Account {id: $author}) RETURN t.id AS id",
            me=user_id,
            author=author_id,
        )
        return bool(rows)

    async def create_status(self, request: web.Request) -> web.Response:
        user_id = await self.viewer(request)
        if request.content_type == "application/json":
            form = await request.json(loads=orjson.loads)
            media_ids = [int(m) for m in form.get("media_ids") or []]
        else:
            data = await request.post()
            form = dict(data)
            media_ids = [int(str(m)) for m in data.getall("media_ids[]", data.getall("media_ids", []))]
        text = str(form.get("status") or "")
        if not text.strip() and not media_ids:
            raise Refused(422, "Validation failed: Text can't be blank")
        if len(text) > self.settings.status_max_chars:
            raise Refused(422, f"Validation failed: Text is too long (maximum is {self.settings.status_max_chars})")
        await self.rate_limit("post", user_id)
        status_id = self.ids.next_id()
        record = new_status(status_id, user_id, int(time.time() * 1000), text=text, media_ids=media_ids)

        async def attach(tx: Any) -> None:
            if media_ids:
                await self.media.attach_media_tx(tx, user_id, status_id, media_ids)

        try:
            row = await self.statuses.create(record, before_commit=attach)
        except Unprocessable as refused:
            raise Refused(422, str(refused)) from None
        await self.account_cache.invalidate(user_id)
        await self.timelines.deliver([(status_id, None)], [user_id])
        await self.events.publish(
            "status.created", status_id=status_id, account_id=user_id, in_reply_to_account_id=None
        )
        await self.add_attachments([row])
        await self.status_cache.put_many({status_id: row})
        post = (await self.hydrate([status_id], user_id, rows={status_id: row}, view=False))[0]
        return json_response(status_entity(post, self.settings))

    async def favourite(self, request: web.Request) -> web.Response:
        user_id = await self.viewer(request)
        status_id = int(request.match_info["status_id"])
        hydrated = await self.hydrate([status_id], user_id)
        if not hydrated or hydrated[0].status["visibility"] == "private":  # the mix posts publicly
            raise Refused(404, "Record not found")
        post = hydrated[0].original
        like_id = self.ids.next_id()
        event = {  # the fields ``LikeService.set_liked`` sends
            "account_id": user_id,
            "status_id": post.id,
            "status_account_id": post.status["account_id"],
            "like_id": like_id,
            "created_at": int(time.time() * 1000),
        }
        persisted = int(post.status.get("favourites_count") or 0)
        try:  # the rate limit is counted in the like's own Lua call, as raygram counts it
            changed, count = await self.likes.change(
                "like.created", user_id, post.id, like_id, persisted, event, rate=self.limit("favourite", user_id)
            )
        except OverLimit:
            raise Refused(429, "Rate limit exceeded for favourites; retry later") from None
        if changed == "load":
            limit = self.settings.favourites_load_limit
            likes = await self.like_graph.likes_of_user(user_id, limit + 1)
            await self.likes.load_favourites(user_id, likes[:limit], complete=len(likes) <= limit)
            changed, count = await self.likes.change("like.created", user_id, post.id, like_id, persisted, event)
        if changed == "check":
            earlier = await self.like_graph.like_of(user_id, post.id)
            if earlier is not None:
                await self.likes.remember_like(user_id, post.id, earlier)
            changed, count = await self.likes.change(
                "like.created", user_id, post.id, like_id, persisted, event, graph_checked=True
            )
        post.favourites_count, post.favourited = count, True
        return json_response(status_entity(post, self.settings))

    @staticmethod
    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")


@web.middleware
async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Refusals as raygram's ``{"error": ...}`` JSON."""
    try:
        return await handler(request)
    except Refused as refused:
        return web.Response(
            body=orjson.dumps({"error": str(refused)}), status=refused.status, content_type="application/json"
        )


async def make_app(settings: Settings) -> web.Application:
    """The app; async because ids need a snowflake worker id leased from Redis, as a replica leases one."""
    ids = await claim_id_generator(redis_from(settings))
    baseline = Baseline(settings, ids)
    app = web.Application(middlewares=[errors])
    app.router.add_get("/api/v1/timelines/home", baseline.home)
    app.router.add_get(r"/api/v1/accounts/{account_id:\d+}/statuses", baseline.profile)
    app.router.add_post("/api/v1/statuses", baseline.create_status)
    app.router.add_post(r"/api/v1/statuses/{status_id:\d+}/favourite", baseline.favourite)
    app.router.add_get("/health", baseline.health)

    async def close(_: web.Application) -> None:
        await baseline.close()

    app.on_cleanup.append(close)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", help="instead of the environment's REDIS_URL")
    parser.add_argument("--base-url", help="what the entities' URLs start with (PUBLIC_URL), as in raygram")
    parser.add_argument("--stream-maxlen", type=int, help="instead of the environment's EVENT_STREAM_MAX")
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    if args.base_url:
        overrides["public_url"] = args.base_url
    if args.stream_maxlen:
        overrides["event_stream_max"] = args.stream_maxlen
    settings = Settings(**overrides)
    try:  # the same event loop uvicorn gives a Serve replica, so the loop is not the difference
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(make_app(settings), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
