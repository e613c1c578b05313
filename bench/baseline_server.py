"""The home-feed read without Ray Serve, FastAPI or the service layers: bare aiohttp on Redis.

It answers ``GET /api/v1/timelines/home`` from the same Redis the stack uses,
doing the irreducible work the same way: the bearer token's cached principal
(one GET), the inbox page (one ZREVRANGEBYLEX), the cached status and account
JSON (one MGET each), the same Mastodon entities (``api.entities``, so the
JSON shape and its cost are identical), orjson, and the ``Link`` header. What
raygram spends beyond this is framework and layering, which is what the
feed-read benchmark wants to expose.

Run as ``python -m bench.baseline_server --port P --redis-url URL --base-url URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from types import SimpleNamespace

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from api.entities import status_entity
from redis_store.timelines import timeline_key
from services.hydrate import HydratedStatus

PAGE = 20


def make_app(redis: aioredis.Redis, base_url: str) -> web.Application:
    settings = SimpleNamespace(base_url=base_url)  # all that ``status_entity`` reads

    async def home(request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        cached = await redis.get(f"token:{hashlib.sha256(token.encode()).hexdigest()}") if token else None
        if scheme.lower() != "bearer" or cached is None:
            return web.json_response({"error": "The access token is invalid"}, status=401)
        user_id = orjson.loads(cached)["account_id"]
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

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/api/v1/timelines/home", home)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--base-url", required=True, help="what the entities' URLs start with, as in raygram")
    args = parser.parse_args()
    try:  # the same event loop uvicorn gives a Serve replica, so the loop is not the difference
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    redis = aioredis.Redis.from_url(args.redis_url, decode_responses=True)
    web.run_app(make_app(redis, args.base_url), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
