"""Stories: Pixelfed's API under ``/api/v1.1/stories/`` (its shapes, its parameter names).

``add`` uploads (multipart ``file``), ``publish`` makes the upload a story
(``media_id``, ``duration``, ``can_reply``, ``can_react``), ``carousel`` and
``self-carousel`` read, ``seen`` (``id``) records a view, ``viewers`` (``sid``;
Pixelfed serves it under ``/api/v1.2`` too) lists them for the author,
``self-expire/:id`` ends a story, ``comment`` (``sid``, ``caption``) replies to
one. The rules are in ``services.stories``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from api.auth import context, scoped
from api.entities import account_entity, iso_time
from api.openapi import STORY_UPLOAD, doc
from api.params import Id, IdPath, parse, parse_id, read_params
from api.routes.media import MULTIPART_OVERHEAD, LimitedBody
from api.schemas import Account, StoryAdded, StoryCarousel, StoryPublished, StoryReply
from config import Settings
from services.auth import Principal
from services.errors import BadRequest, Unprocessable
from services.media import MediaService
from services.stories import StoryGroup

router = APIRouter()
PREFIX = "/api/v1.1/stories"


class PublishForm(BaseModel):
    media_id: Id = Field(description="The id `add` answered")
    duration: int = Field(description="Seconds to show the story: 3 to 30")
    can_reply: bool = Field(description="Followers may reply (as a direct message)")
    can_react: bool = Field(description="Followers may react")


class SeenForm(BaseModel):
    id: Id = Field(description="The story")


class ViewersQuery(BaseModel):
    sid: Id = Field(description="The story")
    limit: int = Field(default=40, ge=1, le=200)


class CommentForm(BaseModel):
    sid: Id = Field(description="The story")
    caption: str = Field(min_length=1, max_length=500, description="The reply")


def story_user(author: dict[str, Any], viewer_id: int, settings: Settings) -> dict[str, Any]:
    avatar = f"{settings.base_url}/avatars/original/missing.png"
    return {
        "id": str(author["id"]),
        "username": author.get("username", ""),
        "username_acct": author.get("username", ""),
        "avatar": avatar,
        "local": True,
        "is_author": author["id"] == viewer_id,
    }


def story_group(group: StoryGroup, viewer_id: int, settings: Settings, media: MediaService) -> dict[str, Any]:
    """Pixelfed's carousel entry for one author; media URLs stop working when the story expires."""
    author_id = group.author["id"]
    nodes = []
    for story in group.stories:
        until = story["expires_at"] // 1000 + 1  # a URL's expiry is a whole second; the read path is exact
        nodes.append(
            {
                "id": str(story["id"]),
                "pid": str(author_id),
                "type": story["kind"],
                "src": media.signer.url(story["src"], story["media_id"], until=until),
                "preview": media.signer.url(story["preview"], story["media_id"], until=until)
                if story.get("preview")
                else None,
                "duration": story["duration"],
                "seen": story["id"] in group.seen or author_id == viewer_id,
                "created_at": iso_time(story["created_at"]),
                "expires_at": iso_time(story["expires_at"]),
                "can_reply": story["can_reply"],
                "can_react": story["can_react"],
            }
        )
    return {
        "id": f"pfs:{author_id}",
        "user": story_user(group.author, viewer_id, settings),
        "nodes": nodes,
        "url": f"{settings.base_url}/stories/{group.author.get('username', '')}",
        "seen": author_id == viewer_id or group.all_seen,
    }


@router.post(
    f"{PREFIX}/add",
    **doc(
        StoryAdded,
        auth="write:media",
        errors=[400, 413, 415, 422],
        responses={202: {"model": StoryAdded, "description": "Accepted: still processing, `media_url` is null"}},
        extra={"requestBody": STORY_UPLOAD},
    ),
)
async def add(request: Request, principal: Principal = Depends(scoped("write:media"))) -> ORJSONResponse:
    ctx = context(request)
    s = ctx.settings
    body = LimitedBody(request, max(s.story_image_max_bytes, s.story_video_max_bytes) + MULTIPART_OVERHEAD)
    try:
        params = await read_params(body.request, files=True)
    except BadRequest:
        if body.exceeded:
            raise body.error() from None
        raise
    try:
        upload = params.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("Validation failed: file must be an uploaded file")
        entity, ready = await ctx.stories.add(principal.account_id, upload)  # type: ignore[arg-type]
    finally:
        for value in params.values():
            if isinstance(value, UploadFile):
                await value.close()
    frame = next((v["url"] for v in entity["variants"] if v["type"] == "story"), None)
    answer = {
        "code": 200,
        "msg": "Successfully added",
        "media_id": entity["id"],
        "media_url": entity["url"] if entity["type"] in ("video", "gifv") else frame,
        "media_type": "video" if entity["type"] in ("video", "gifv") else "photo",
    }
    return ORJSONResponse(answer, status_code=200 if ready else 202)


@router.post(f"{PREFIX}/publish", **doc(StoryPublished, body=PublishForm, auth="write:statuses", errors=[429]))
async def publish(request: Request, principal: Principal = Depends(scoped("write:statuses"))) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, PublishForm)
    story = await ctx.stories.publish(
        principal.account_id,  # type: ignore[arg-type]
        form.media_id,
        form.duration,
        form.can_reply,
        form.can_react,
    )
    return ORJSONResponse(
        {
            "code": 200,
            "msg": "Successfully published",
            "id": str(story["id"]),
            "expires_at": iso_time(story["expires_at"]),
        }
    )


@router.get(f"{PREFIX}/carousel", **doc(StoryCarousel, auth="read:statuses"))
async def carousel(request: Request, principal: Principal = Depends(scoped("read:statuses"))) -> ORJSONResponse:
    ctx = context(request)
    me: int = principal.account_id  # type: ignore[assignment]
    found = await ctx.stories.carousel(me)
    return ORJSONResponse(
        {
            "self": story_group(found.own, me, ctx.settings, ctx.media),
            "nodes": [story_group(group, me, ctx.settings, ctx.media) for group in found.others],
        }
    )


@router.get(f"{PREFIX}/self-carousel", **doc(StoryCarousel, auth="read:statuses"))
async def self_carousel(request: Request, principal: Principal = Depends(scoped("read:statuses"))) -> ORJSONResponse:
    """The caller's own active stories only (``nodes`` is empty)."""
    ctx = context(request)
    me: int = principal.account_id  # type: ignore[assignment]
    own = await ctx.stories.own(me)
    return ORJSONResponse({"self": story_group(own, me, ctx.settings, ctx.media), "nodes": []})


@router.post(f"{PREFIX}/seen", **doc(StoryReply, body=SeenForm, auth="write:statuses", errors=[404]))
async def seen(request: Request, principal: Principal = Depends(scoped("write:statuses"))) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, SeenForm)
    await ctx.stories.mark_seen(principal.account_id, form.id)  # type: ignore[arg-type]
    return ORJSONResponse({"code": 200, "msg": None})


VIEWERS_DOC = doc(list[Account], query=ViewersQuery, auth="read:statuses", errors=[404])


@router.get(f"{PREFIX}/viewers", **VIEWERS_DOC)
@router.get("/api/v1.2/stories/viewers", operation_id="story_viewers_v1_2", **VIEWERS_DOC)
async def viewers(request: Request, principal: Principal = Depends(scoped("read:statuses"))) -> ORJSONResponse:
    """The author's view of who saw their active story, newest view first (Pixelfed: ``/api/v1.2``)."""
    ctx = context(request)
    query = await parse(request, ViewersQuery)
    accounts = await ctx.stories.viewers(principal.account_id, query.sid, query.limit)  # type: ignore[arg-type]
    return ORJSONResponse([account_entity(a, ctx.settings) for a in accounts])


@router.post(f"{PREFIX}/self-expire/{{story_id:id}}", **doc(StoryReply, auth="write:statuses", errors=[404]))
async def self_expire(
    story_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:statuses"))
) -> ORJSONResponse:
    ctx = context(request)
    await ctx.stories.end(principal.account_id, parse_id(story_id))  # type: ignore[arg-type]
    return ORJSONResponse({"code": 200, "msg": "Successfully deleted"})


COMMENT_DOC = doc(StoryReply, body=CommentForm, auth="write:statuses", errors=[404, 429])


@router.post(f"{PREFIX}/comment", **COMMENT_DOC)
@router.post("/api/v1.2/stories/comment", operation_id="story_comment_v1_2", **COMMENT_DOC)
async def comment(request: Request, principal: Principal = Depends(scoped("write:statuses"))) -> ORJSONResponse:
    """A reply to a story, delivered to its author as a direct message (a conversation on both sides)."""
    ctx = context(request)
    form = await parse(request, CommentForm)
    await ctx.stories.reply(principal.account_id, form.sid, form.caption)  # type: ignore[arg-type]
    return ORJSONResponse({"code": 200, "msg": "Sent!"})
