"""Mastodon's streaming API: server-sent events and WebSocket, across Serve replicas.

Events reach a connection through Redis pub/sub (``redis_store.live``: one
shared subscription per replica), so a post fanned out by any actor or a
notification made by the notifier reaches the user's connection on whichever
replica holds it. Payloads are rendered per viewer when they are sent. Idle
connections get a heartbeat: an SSE comment line, or the server's WebSocket
ping frames. Open streams are capped per account and per client address
(429, or WebSocket close code 4029, past the cap), and a stream's state is
freed the moment its client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import anyio
import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from api.auth import client_address, context, has_scope
from api.context import AppContext
from api.entities import conversation_entity, notification_entity, status_entity
from api.openapi import SSE_DOC
from redis_store.live import Listener, StreamLimitReached
from services.auth import Principal
from services.errors import NotFound, RateLimited, Unauthorized

router = APIRouter()
STREAM_EVENTS = {
    "user": {"update", "notification", "delete"},
    "user:notification": {"notification"},
    "direct": {"conversation"},
}


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
            if not await ctx.feed.filter_home(user_id, [post]):
                return None  # the home feed's rules (mutes, blocks) hold for its live updates too
            return event, orjson.dumps(status_entity(post, ctx.settings)).decode()
        if event == "notification":
            found = await ctx.notifications.get(user_id, int(message["id"]))
            return event, orjson.dumps(notification_entity(found, ctx.settings)).decode()
        if event == "conversation":
            conversation = await ctx.conversations.get(user_id, int(message["id"]))
            return event, orjson.dumps(conversation_entity(conversation, ctx.settings)).decode()
    except NotFound:  # deleted (or no longer visible) before it could be sent
        return None
    return None


@router.get("/api/v1/streaming/health", response_class=PlainTextResponse)
async def health() -> PlainTextResponse:
    return PlainTextResponse("OK")


class EventStreamResponse(StreamingResponse):
    """Server-sent events that always notice the client leaving and always free what they held.

    The disconnect is watched for while the body streams (whatever ASGI
    version the server speaks), and the body's generator is closed in every
    case, so its ``finally`` releases the stream at once.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream_then_stop() -> None:
                    await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream_then_stop)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        except OSError:  # the client went away while we were writing
            pass
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


async def _open(ctx: AppContext, principal: Principal, address: str) -> Listener:
    try:
        return await ctx.live.open(principal.account_id, address)  # type: ignore[arg-type]
    except StreamLimitReached as exc:
        raise RateLimited(
            str(exc), headers={"Retry-After": str(int(ctx.settings.streaming_heartbeat_seconds * 3))}
        ) from None


async def _sse(request: Request, stream: str) -> StreamingResponse:
    ctx = context(request)
    principal = await _principal_from(ctx, _token(request.headers, request.query_params))
    user_id: int = principal.account_id  # type: ignore[assignment]
    wanted = STREAM_EVENTS[stream]
    listener = await _open(ctx, principal, client_address(request))
    heartbeat = ctx.settings.streaming_heartbeat_seconds

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b":)\n\n"
            while not listener.overflowed:
                message = await listener.next(heartbeat)
                if message is None:
                    yield b":thump\n\n"
                    continue
                if message["event"] not in wanted:
                    continue
                rendered = await render(ctx, user_id, message)
                if rendered:
                    yield f"event: {rendered[0]}\ndata: {rendered[1]}\n\n".encode()
        finally:
            ctx.live.release(listener)

    return EventStreamResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get("/api/v1/streaming/user", response_class=StreamingResponse, **SSE_DOC)
async def user_stream(request: Request) -> StreamingResponse:
    return await _sse(request, "user")


@router.get("/api/v1/streaming/user/notification", response_class=StreamingResponse, **SSE_DOC)
async def user_notification_stream(request: Request) -> StreamingResponse:
    return await _sse(request, "user:notification")


@router.get("/api/v1/streaming/direct", response_class=StreamingResponse, **SSE_DOC)
async def direct_stream(request: Request) -> StreamingResponse:
    """Direct-message conversations as they change (``conversation`` events)."""
    return await _sse(request, "direct")


@router.websocket("/api/v1/streaming")
async def websocket_stream(websocket: WebSocket) -> None:
    """One socket, Mastodon's framing: ``{"stream": [...], "event": ..., "payload": ...}``.

    Two tasks share the socket: one reads the client's (un)subscribe commands,
    one forwards events. When either ends (the client left, or it could not
    keep up) the other is cancelled and the stream is released.
    """
    ctx: AppContext = websocket.app.state.ctx
    try:
        principal = await _principal_from(ctx, _token(websocket.headers, websocket.query_params))
        listener = await _open(ctx, principal, client_address(websocket))
    except Unauthorized:
        await websocket.close(code=4001, reason="Invalid access token")
        return
    except RateLimited as exc:
        await websocket.close(code=4029, reason=exc.message)
        return
    user_id: int = principal.account_id  # type: ignore[assignment]
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

    async def forward_events() -> None:
        while not listener.overflowed:
            # Idle: the server's protocol-level pings (uvicorn, every 20 s) keep the socket open.
            message = await listener.next(ctx.settings.streaming_heartbeat_seconds)
            if message is None:
                continue
            listening = [s for s in sorted(streams) if message["event"] in STREAM_EVENTS[s]]
            if not listening:
                continue
            rendered = await render(ctx, user_id, message)
            if rendered:
                frame = {"stream": listening, "event": rendered[0], "payload": rendered[1]}
                await websocket.send_text(orjson.dumps(frame).decode())

    try:
        await websocket.accept()
        tasks = [asyncio.create_task(read_commands()), asyncio.create_task(forward_events())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        ctx.live.release(listener)
    if listener.overflowed:
        await websocket.close(code=1013, reason="Too slow to keep up")
