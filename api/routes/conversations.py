"""Direct-message conversations (Mastodon's ``/api/v1/conversations``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse

from api.auth import context, scoped
from api.entities import conversation_entity
from api.openapi import doc
from api.pagination import PageParams, link_header
from api.params import IdPath, parse, parse_id
from api.schemas import Conversation, Empty
from services.auth import Principal

router = APIRouter()
LIST_DOC = doc(list[Conversation], query=PageParams, auth="read:statuses", paged=True)


async def _list(request: Request, principal: Principal) -> ORJSONResponse:
    ctx = context(request)
    page = await parse(request, PageParams)
    found = await ctx.conversations.page(principal.account_id, page.max_id, page.since_id, page.min_id, page.limit)  # type: ignore[arg-type]
    headers = link_header(request, found[0].last_status_id, found[-1].last_status_id) if found else {}
    return ORJSONResponse([conversation_entity(c, ctx.settings) for c in found], headers=headers)


@router.get("/api/v1/conversations", **LIST_DOC)
async def conversations(request: Request, principal: Principal = Depends(scoped("read:statuses"))) -> ORJSONResponse:
    """The user's conversations, the most recently active first; pages by last status (``Link``)."""
    return await _list(request, principal)


@router.get("/api/v1/conversations/", **LIST_DOC)
async def conversations_slash(
    request: Request, principal: Principal = Depends(scoped("read:statuses"))
) -> ORJSONResponse:
    """The same list (Mastodon.py asks for it with a trailing slash)."""
    return await _list(request, principal)


@router.post(
    "/api/v1/conversations/{conversation_id:id}/read", **doc(Conversation, auth="write:conversations", errors=[404])
)
async def mark_read(
    conversation_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:conversations"))
) -> ORJSONResponse:
    ctx = context(request)
    found = await ctx.conversations.mark_read(principal.account_id, parse_id(conversation_id))  # type: ignore[arg-type]
    return ORJSONResponse(conversation_entity(found, ctx.settings))


@router.delete("/api/v1/conversations/{conversation_id:id}", **doc(Empty, auth="write:conversations", errors=[404]))
async def remove(
    conversation_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:conversations"))
) -> ORJSONResponse:
    """Removes the conversation from the user's list; a new message in it brings it back."""
    await context(request).conversations.remove(principal.account_id, parse_id(conversation_id))  # type: ignore[arg-type]
    return ORJSONResponse({})
