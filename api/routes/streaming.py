"""Mastodon's streaming API: server-sent events and WebSocket, across Serve replicas.

Events reach a connection through Redis pub/sub (``redis_store.live``), so a
post fanned out by any actor or a notification made by the notifier reaches
the user's connection on whichever replica holds it. Payloads are rendered
per viewer when they are sent. Idle connections get a
heartbeat: an SSE comment line, or the server's WebSocket ping frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse

from api.auth import context, has_scope
from api.context import AppContext
from api.entities import notification_entity, status_entity
from services.auth import Principal
from services.errors import NotFound, Unauthorized

router = APIRouter()
STREAM_EVENTS = {"user": {"update", "notification", "delete"}, "user:notification": {"notification"}}


async def _principal_from(ctx: AppContext, token: str | None) -> Principal:
    if not token:
        raise Unauthorized("Missing access token")
    principal = await ctx.auth.principal(token)
    if principal.account_id is None:
        raise Unauthorized("This stream requires a user token")
    if not has_scope(principal.scopes, "read:statuses"):
        raise Unauthorized("This stream requires the read scope")
    return principal


def _token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """Bearer header, ``access_token`` query parameter, or the WebSocket sub-protocol, as Mastodon accepts."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return query.get("access_token") or headers.get("sec-websocket-protocol")


async def render(ctx: AppContext, user_id: int, message: dict) -> tuple[str, str] | None:
    """(event, payload) for a pub/sub message, rendered for ``user_id``; None if nothing to send."""
    event = message["event"]
    if event == "delete":
        return event, str(message["status_id"])
    try:
        if event == "update":
            post = await ctx.statuses.get(int(message["status_id"]), user_id)
            return event, orjson.dumps(status_entity(post, ctx.settings)).decode()
        if event == "notification":
            found = await ctx.notifications.get(user_id, int(message["id"]))
            return event, orjson.dumps(notification_entity(found, ctx.settings)).decode()
    except NotFound:  # deleted (or no longer visible) before it could be sent
        return None
    return None


@router.get("/api/v1/streaming/health")
async def health() -> PlainTextResponse:
    return PlainTextResponse("OK")


async def _sse(request: Request, stream: str) -> StreamingResponse:
    ctx = context(request)
    principal = await _principal_from(ctx, _token(request.headers, request.query_params))
    user_id: int = principal.account_id  # type: ignore[assignment]
    wanted = STREAM_EVENTS[stream]

    async def body() -> AsyncIterator[bytes]:
        yield b":)\n\n"
        async for message in ctx.live.subscription(user_id):
            if await request.is_disconnected():
                return
            if message is None:
                yield b":thump\n\n"
                continue
            if message["event"] not in wanted:
                continue
            rendered = await render(ctx, user_id, message)
            if rendered:
                yield f"event: {rendered[0]}\ndata: {rendered[1]}\n\n".encode()

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get("/api/v1/streaming/user")
async def user_stream(request: Request) -> StreamingResponse:
    return await _sse(request, "user")


@router.get("/api/v1/streaming/user/notification")
async def user_notification_stream(request: Request) -> StreamingResponse:
    return await _sse(request, "user:notification")


@router.websocket("/api/v1/streaming")
async def websocket_stream(websocket: WebSocket) -> None:
    """One socket, Mastodon's framing: ``{"stream": [...], "event": ..., "payload": ...}``."""
    ctx: AppContext = websocket.app.state.ctx
    try:
        principal = await _principal_from(ctx, _token(websocket.headers, websocket.query_params))
    except Unauthorized:
        await websocket.close(code=4001, reason="Invalid access token")
        return
    user_id: int = principal.account_id  # type: ignore[assignment]
    await websocket.accept()
    streams: set[str] = set()
    if websocket.query_params.get("stream") in STREAM_EVENTS:
        streams.add(websocket.query_params["stream"])

    async def read_commands() -> None:
        while True:
            try:
                command = orjson.loads(await websocket.receive_text())
            except orjson.JSONDecodeError:
                await websocket.send_text(orjson.dumps({"error": "Malformed JSON"}).decode())
                continue
            stream = command.get("stream") if isinstance(command, dict) else None
            if stream not in STREAM_EVENTS:
                await websocket.send_text(orjson.dumps({"error": "Unknown stream type"}).decode())
            elif command.get("type") == "subscribe":
                streams.add(stream)
            elif command.get("type") == "unsubscribe":
                streams.discard(stream)

    reader = asyncio.create_task(read_commands())
    try:
        async for message in ctx.live.subscription(user_id):
            if reader.done():
                return
            if message is None:
                continue  # idle: the server's protocol-level pings (uvicorn, every 20 s) keep the socket open
            listening = [s for s in sorted(streams) if message["event"] in STREAM_EVENTS[s]]
            if not listening:
                continue
            rendered = await render(ctx, user_id, message)
            if rendered:
                frame = {"stream": listening, "event": rendered[0], "payload": rendered[1]}
                await websocket.send_text(orjson.dumps(frame).decode())
    except WebSocketDisconnect:
        return
    finally:
        reader.cancel()
