"""Two raygram routes without Ray Serve, FastAPI or the service layers: bare aiohttp on Redis.

``GET /api/v1/timelines/home`` is answered from the same Redis the stack uses,
doing the irreducible work the same way: the bearer token's cached principal
(one GET), the inbox page (one ZREVRANGEBYLEX), the cached status and account
JSON (one MGET each), the same Mastodon entities (``api.entities``, so the
JSON shape and its cost are identical), orjson, and the ``Link`` header.

``POST /api/v1/statuses/{id}/favourite`` does the like's irreducible work: the
cached principal, the cached status and its author (one GET each), the like
itself through ``redis_store.likes.LikeStore.change`` (the same Lua call, so the
same favourites set, counter and ``like.created`` event, which the stack's
persister and notifier then consume as they would raygram's), and the same
status entity with ``favourited`` and the new count. It has no graph fallback:
the benchmark warms the caches first. Unlike raygram it does not rate-limit
and does not read the page view (counts, viewer state) before writing.

What raygram spends beyond this is framework and layering, which is what the
benchmarks want to expose.

Run as ``python -m bench.baseline_server --port P --redis-url URL --base-url URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from types import SimpleNamespace

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from api.entities import status_entity
from config import Settings
from redis_store.client import claim_id_generator
from redis_store.likes import LikeStore
from redis_store.timelines import timeline_key
from services.hydrate import HydratedStatus

PAGE = 20


async def make_app(redis: aioredis.Redis, base_url: str, stream_maxlen: int) -> web.Application:
    """The app; async because like ids need a snowflake worker id claimed from Redis, as a replica claims one."""
    settings = SimpleNamespace(base_url=base_url)  # all that ``status_entity`` reads
    like_ids = await claim_id_generator(redis)
    likes = LikeStore(redis, Settings(event_stream_max=stream_maxlen))  # caps and TTLs as the stack's

    async def account_id(request: web.Request) -> int | None:
        """The caller's account from the token cache raygram fills (one GET), or None."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        cached = await redis.get(f"token:{hashlib.sha256(token.encode()).hexdigest()}") if token else None
        if scheme.lower() != "bearer" or cached is None:
            return None
        return orjson.loads(cached)["account_id"]

    def unauthorized() -> web.Response:
        return web.json_response({"error": "The access token is invalid"}, status=401)

    async def home(request: web.Request) -> web.Response:
        user_id = await account_id(request)
        if user_id is None:
            return unauthorized()
        ids = [int(m) for m in await redis.zrevrangebylex(timeline_key(user_id), "+", "-", start=0, num=PAGE)]
        raw_statuses = await redis.mget([f"status:{i}" for i in ids]) if ids else []
        statuses = {i: orjson.loads(v) for i, v in zip(ids, raw_statuses, strict=True) if v}
        authors = list({s["account_id"] for s in statuses.values()})
        raw_accounts = await redis.mget([f"account:{a}" for a in authors]) if authors else []
        accounts = {a: orjson.loads(v) for a, v in zip(authors, raw_accounts, strict=True) if v}
        posts = [
            HydratedStatus(statuses[i], accounts[statuses[i]["account_id"]])
            for i in ids
            if i in statuses and statuses[i]["account_id"] in accounts
        ]
        headers = {}
        if posts:
            url = f"{base_url}/api/v1/timelines/home"
            newest, oldest = posts[0].status["id"], posts[-1].status["id"]
            headers["Link"] = f'<{url}?max_id={oldest}>; rel="next", <{url}?min_id={newest}>; rel="prev"'
        body = orjson.dumps([status_entity(p, settings) for p in posts])  # type: ignore[arg-type]
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def favourite(request: web.Request) -> web.Response:
        user_id = await account_id(request)
        if user_id is None:
            return unauthorized()
        status_id = int(request.match_info["status_id"])
        raw_status = await redis.get(f"status:{status_id}")
        status = orjson.loads(raw_status) if raw_status else None
        raw_account = await redis.get(f"account:{status['account_id']}") if status else None
        if status is None or raw_account is None:  # not warmed: raygram would read the graph here
            return web.json_response({"error": "Record not found (not cached)"}, status=404)
        like_id = like_ids.next_id()
        event = {  # the fields ``LikeService.set_liked`` sends
            "account_id": user_id,
            "status_id": status_id,
            "status_account_id": status["account_id"],
            "like_id": like_id,
            "created_at": int(time.time() * 1000),
        }
        persisted = int(status.get("favourites_count") or 0)
        changed, count = await likes.change("like.created", user_id, status_id, like_id, persisted, event)
        if isinstance(changed, str):  # raygram consults the graph here; the benchmark loads favourites first
            return web.json_response({"error": "favourites not loaded"}, status=409)
        post = HydratedStatus(status, orjson.loads(raw_account), favourites_count=count, favourited=True)
        return web.Response(body=orjson.dumps(status_entity(post, settings)), content_type="application/json")  # type: ignore[arg-type]

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/api/v1/timelines/home", home)
    app.router.add_post(r"/api/v1/statuses/{status_id:\d+}/favourite", favourite)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--base-url", required=True, help="what the entities' URLs start with, as in raygram")
    parser.add_argument("--stream-maxlen", type=int, default=1_000_000, help="raygram's event_stream_max")
    args = parser.parse_args()
    try:  # the same event loop uvicorn gives a Serve replica, so the loop is not the difference
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    redis = aioredis.Redis.from_url(args.redis_url, decode_responses=True)
    app = make_app(redis, args.base_url, args.stream_maxlen)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
