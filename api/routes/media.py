"""Media: uploads (Mastodon's /api/v2/media and /api/v1/media), the uploader's view and edits, signed downloads.

Downloads under ``/media/...`` are what a CDN caches: a valid signature is
required (403 otherwise, also once expired), the upload's post must still
exist (404 once deleted), and the bytes come with a strong ``ETag``, immutable
caching until the URL expires and no longer (``private`` for media of posts
that are not public or unlisted, and of uploads not attached yet, so that only
the browser keeps them), ``If-None-Match`` (304) and single ``Range`` requests
(206, or 416 when unsatisfiable).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import ORJSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.types import Message

from api.auth import context, scoped
from api.openapi import MEDIA_BYTES, MEDIA_UPLOAD, doc, error_responses
from api.params import IdPath, parse, parse_id, read_params, validate
from api.schemas import MediaAttachment
from media.urls import MEDIA_PATH_PREFIX, max_age
from services.auth import Principal
from services.errors import BadRequest, PayloadTooLarge, Unprocessable
from services.media import ServedObject

router = APIRouter()
MULTIPART_OVERHEAD = 1024 * 1024  # form fields and part headers besides the file itself


class MediaForm(BaseModel):
    """The fields besides the file; the service applies the real description limit with a clear message."""

    description: str | None = Field(default=None, max_length=100_000)
    focus: str | None = Field(default=None, max_length=100)


def ascii_number(text: str) -> bool:
    """Decimal digits in ASCII, short enough for int(): "²".isdigit() is true and then int() raises."""
    return 0 < len(text) <= 19 and text.isascii() and text.isdigit()


class LimitedBody:
    """``request`` whose body may not exceed ``limit`` bytes (413), whatever Content-Length claims or omits."""

    def __init__(self, request: Request, limit: int) -> None:
        self.limit = limit
        self.exceeded = False
        declared = request.headers.get("content-length", "")
        if ascii_number(declared) and int(declared) > limit:
            raise self.error()
        received = 0

        async def receive() -> Message:
            nonlocal received
            message = await request.receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    self.exceeded = True
                    raise self.error()
            return message

        self.request = Request(request.scope, receive)

    def error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request body is too large: at most {self.limit // (1024 * 1024)} MB")


async def _upload(request: Request, principal: Principal) -> ORJSONResponse:
    ctx = context(request)
    limit = max(ctx.settings.media_image_max_bytes, ctx.settings.media_video_max_bytes) + MULTIPART_OVERHEAD
    body = LimitedBody(request, limit)
    try:
        params = await read_params(body.request, files=True)
    except BadRequest:
        if body.exceeded:  # the form parser reports any failure of the stream as a malformed body
            raise body.error() from None
        raise
    try:
        upload = params.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("Validation failed: file must be an uploaded file")
        form = validate(MediaForm, {k: v for k, v in params.items() if not isinstance(v, UploadFile)})
        entity, ready = await ctx.media.upload(principal.account_id, upload, form.description, form.focus)  # type: ignore[arg-type]
    finally:
        for value in params.values():
            if isinstance(value, UploadFile):
                await value.close()
    # Mastodon: 200 when the attachment is ready, 202 (url null) while it is being processed.
    return ORJSONResponse(entity, status_code=200 if ready else 202)


UPLOAD_DOC = doc(
    MediaAttachment,
    auth="write:media",
    errors=[400, 413, 415, 422],
    responses={202: {"model": MediaAttachment, "description": "Accepted: still processing, `url` is null"}},
    extra={"requestBody": MEDIA_UPLOAD},
)
DOWNLOAD_DOC = {
    "response_class": Response,
    "responses": {
        200: {"content": MEDIA_BYTES, "description": "The bytes, with an `ETag`; cacheable until the URL expires"},
        206: {"content": MEDIA_BYTES, "description": "The asked-for `Range`"},
        304: {"description": "Not modified (`If-None-Match`)"},
        416: {"description": "The `Range` starts past the end"},
        **error_responses([403, 404, 503]),
    },
    "openapi_extra": {
        "parameters": [
            {"name": "m", "in": "query", "required": True, "schema": {"type": "string"}, "description": "Upload id"},
            {"name": "e", "in": "query", "required": True, "schema": {"type": "string"}, "description": "Expiry"},
            {"name": "s", "in": "query", "required": True, "schema": {"type": "string"}, "description": "Signature"},
            *(
                {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
                for name in ("Range", "If-Range", "If-None-Match")
            ),
        ]
    },
}


@router.post("/api/v2/media", **UPLOAD_DOC)
async def upload_media(request: Request, principal: Principal = Depends(scoped("write:media"))) -> ORJSONResponse:
    return await _upload(request, principal)


@router.post("/api/v1/media", **UPLOAD_DOC)
async def upload_media_v1(request: Request, principal: Principal = Depends(scoped("write:media"))) -> ORJSONResponse:
    """The deprecated v1 endpoint, kept for old clients; same behaviour as v2."""
    return await _upload(request, principal)


@router.get(
    "/api/v1/media/{media_id:id}",
    **doc(
        MediaAttachment,
        auth="write:media",
        errors=[404, 422],
        responses={206: {"model": MediaAttachment, "description": "Still processing, `url` is null"}},
    ),
)
async def get_media(
    media_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:media"))
) -> ORJSONResponse:
    ctx = context(request)
    entity, state = await ctx.media.get_own(principal.account_id, parse_id(media_id))  # type: ignore[arg-type]
    return ORJSONResponse(entity, status_code=206 if state == "processing" else 200)


@router.put("/api/v1/media/{media_id:id}", **doc(MediaAttachment, body=MediaForm, auth="write:media", errors=[404]))
async def update_media(
    media_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:media"))
) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, MediaForm)
    entity = await ctx.media.update_own(principal.account_id, parse_id(media_id), form.description, form.focus)  # type: ignore[arg-type]
    return ORJSONResponse(entity)


# -- signed downloads ---------------------------------------------------------


def etag_matches(header: str, etag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match requires."""
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or etag in (c.removeprefix("W/") for c in candidates)


class Unsatisfiable(Exception):
    pass


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The single byte range ``header`` asks for, inclusive; None to send everything (absent, multiple or
    malformed ranges may be ignored by RFC 9110); ``Unsatisfiable`` when it starts past the end."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first or last) or not all(ascii_number(part) for part in (first, last) if part):
        return None
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


def _object_response(request: Request, obj: ServedObject) -> Response:
    ctx = context(request)
    size, etag = obj.info.size, obj.info.etag
    cache = f"{'public' if obj.public else 'private'}, max-age={max_age(obj.expires)}, immutable"
    headers: dict[str, Any] = {"ETag": etag, "Cache-Control": cache, "Accept-Ranges": "bytes"}
    if etag_matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    start, end, status = 0, size - 1, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and (if_range is None or if_range.strip() == etag):
        try:
            chosen = parse_range(range_header, size)
        except Unsatisfiable:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if chosen is not None:
            (start, end), status = chosen, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=obj.content_type)
    body = ctx.media.store.open_range(obj.key, start, end)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=obj.content_type)


@router.get("/media/{key:path}", operation_id="download_media", **DOWNLOAD_DOC)
@router.head("/media/{key:path}", operation_id="head_media", **DOWNLOAD_DOC)
async def download(key: str, request: Request) -> Response:
    ctx = context(request)
    path = MEDIA_PATH_PREFIX + quote(key)
    query = request.query_params
    obj = await ctx.media.served_object(path, query.get("m"), query.get("e"), query.get("s"))
    return _object_response(request, obj)
