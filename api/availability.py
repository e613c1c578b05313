"""A store that is down turns into a fast ``503`` with ``Retry-After``; degraded answers say so in a header.

See ``services.availability`` for what degrades and how.
"""

from __future__ import annotations

import logging

import neo4j.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ids import IdsUnavailable
from services.availability import ACTORS_DOWN, GRAPH_DOWN, REDIS_DOWN, begin_request

log = logging.getLogger("raygram.api")
RETRY_AFTER_SECONDS = 2
DEGRADED_HEADER = b"x-raygram-degraded"


class DegradedHeader:
    """Pure ASGI middleware: notes which stores a request had to do without, and says so in a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts = begin_request()

        async def send_with_note(message: Message) -> None:
            if message["type"] == "http.response.start" and parts:
                message["headers"] = [*message.get("headers", []), (DEGRADED_HEADER, ",".join(sorted(parts)).encode())]
            await send(message)

        await self.app(scope, receive, send_with_note)


def _unavailable(part: str) -> ORJSONResponse:
    return ORJSONResponse(
        {"error": f"Service temporarily unavailable: the {part} is down; retry shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_availability(app: FastAPI) -> None:
    app.add_middleware(DegradedHeader)

    @app.exception_handler(REDIS_DOWN[0])
    @app.exception_handler(REDIS_DOWN[1])
    async def redis_down(request: Request, exc: Exception) -> ORJSONResponse:
        log.warning("redis unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _unavailable("cache and timeline store (Redis)")

    @app.exception_handler(IdsUnavailable)
    async def no_ids(request: Request, exc: Exception) -> ORJSONResponse:
        log.warning("no id lease on %s %s: %s", request.method, request.url.path, exc)
        return _unavailable("id service (its Redis lease is being renewed)")

    async def graph_down(request: Request, exc: Exception) -> ORJSONResponse:
        log.warning("graph unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _unavailable("social graph database")

    for graph_error in GRAPH_DOWN:
        app.add_exception_handler(graph_error, graph_down)

    @app.exception_handler(neo4j.exceptions.TransientError)
    async def graph_busy(request: Request, exc: Exception) -> ORJSONResponse:
        log.warning("graph conflict outlasted its retries on %s %s: %s", request.method, request.url.path, exc)
        return _unavailable("social graph database (busy with conflicting writes)")

    @app.exception_handler(ACTORS_DOWN[0])
    @app.exception_handler(ACTORS_DOWN[1])
    async def actor_down(request: Request, exc: Exception) -> ORJSONResponse:
        log.warning("actor unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _unavailable("feed actor")
