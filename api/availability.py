"""A store that is down turns into a fast ``503`` with ``Retry-After``; degraded answers say so in a header.

See ``services.availability`` for what degrades and how.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

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


# What each kind of failure means to a client: the part that is down, for the 503's message.
UNAVAILABLE: list[tuple[tuple[type[Exception], ...], str]] = [
    (REDIS_DOWN, "cache and timeline store (Redis)"),
    ((IdsUnavailable,), "id service (its Redis lease is being renewed)"),
    (GRAPH_DOWN, "social graph database"),
    ((neo4j.exceptions.TransientError,), "social graph database (busy with conflicting writes)"),
    (ACTORS_DOWN, "feed actor"),
]


def _answer_unavailable(part: str) -> Callable[[Request, Exception], Awaitable[ORJSONResponse]]:
    async def unavailable(request: Request, exc: Exception) -> ORJSONResponse:
        log.warning("%s unavailable on %s %s: %s", part, request.method, request.url.path, exc)
        return ORJSONResponse(
            {"error": f"Service temporarily unavailable: the {part} is down; retry shortly"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    return unavailable


def install_availability(app: FastAPI) -> None:
    app.add_middleware(DegradedHeader)
    for errors, part in UNAVAILABLE:
        handler = _answer_unavailable(part)
        for error in errors:
            app.add_exception_handler(error, handler)
