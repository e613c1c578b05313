"""Media uploads: validate, store the original, record it, launch processing; attachments for statuses.

The order of an upload is what makes it safe: the upload is staged in the
store's scratch folder and validated (nothing is kept if it is refused), the
original is stored (on the local disk: fsynced and renamed into place; in S3:
the bucket acknowledged its PUT), the record is written in state
``processing``, and only then is the client answered. A replica that dies
after that loses nothing: records stuck in ``processing`` are re-launched by
any replica, on a read or by the periodic sweep.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os
import orjson
import ray
from neo4j import AsyncManagedTransaction
from starlette.datastructures import UploadFile

import metrics
from config import Settings
from graph.driver import GraphClient, Row
from graph.media import STORY_PURPOSE, MediaGraph, attach_tx, attachable_tx
from ids import SnowflakeGenerator
from media import validation
from media.store import ObjectInfo, object_store, original_key
from media.tasks import launch, now_ms
from media.urls import MEDIA_PATH_PREFIX, UrlSigner
from services.errors import Forbidden, NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType

log = logging.getLogger("raygram.media")
READ_CHUNK = 1024 * 1024
PREVIEW_MAX_WIDTH = 640
SERVABLE_PREFIXES = ("v1/",)  # variant pipelines; originals keep their EXIF and are never served
CONTENT_TYPES = {".jpg": "image/jpeg", ".webp": "image/webp", ".mp4": "video/mp4"}


PUBLIC_VISIBILITIES = ("public", "unlisted")
STORY_FORMATS = ("jpeg", "png", "mp4")  # what Pixelfed's stories take
# A signed URL is handed out again for up to this long (capped at a sixteenth of the URL lifetime), so it is valid
# for at least the lifetime less that; the memo is emptied when it reaches SIGNED_MEMO_MAX entries.
SIGNED_REUSE_SECONDS = 60.0
SIGNED_MEMO_MAX = 50_000


@dataclass(frozen=True)
class ServedObject:
    key: str
    info: ObjectInfo
    content_type: str
    expires: int  # when the URL stops working (Unix seconds): no cache may keep the bytes longer
    public: bool  # the post is public or unlisted; other media may be kept by the browser only


def parse_focus(raw: str | None) -> tuple[float, float] | None:
    """Mastodon's focal point, "x,y" with both in -1..1; None when absent."""
    if raw is None or raw == "":
        return None
    try:
        x, y = (float(part) for part in raw.split(","))
    except ValueError:
        raise Unprocessable('Validation failed: focus must be two numbers, "x,y"') from None
    if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):
        raise Unprocessable("Validation failed: focus coordinates must be within -1.0 and 1.0")
    return x, y


def _aspect(width: int, height: int) -> float:
    return round(width / height, 4) if height else 0.0


def _dims(width: int, height: int) -> dict[str, Any]:
    return {"width": width, "height": height, "size": f"{width}x{height}", "aspect": _aspect(width, height)}


def unsigned_attachment(record: Row) -> dict[str, Any]:
    """Mastodon's MediaAttachment for a record, with the object keys where the URLs go (``MediaService.render``
    signs them). URLs are null until the record is ready. It holds nothing that expires, so hydration caches it
    with the post (``services.hydrate``); the JSON fields of the record are decoded here once."""
    ready = record["state"] == "ready"
    variants = orjson.loads(record.get("variants") or "[]") if ready else []
    meta = orjson.loads(record.get("meta") or "{}") if ready else {}
    widths = sorted((v for v in variants if v["role"] == "width"), key=lambda v: v["width"])
    main = next((v for v in variants if v["role"] == "video"), widths[-1] if widths else None)
    previews = [v for v in widths if v["width"] <= PREVIEW_MAX_WIDTH] or widths[:1]
    preview = previews[-1] if previews else None
    entity_meta: dict[str, Any] = {}
    if ready and main is not None and preview is not None:
        original = _dims(meta["width"], meta["height"])
        if record["kind"] in ("video", "gifv"):
            original.update(
                frame_rate=f"{round(meta['fps'])}/1" if meta.get("fps") else None,
                duration=meta.get("duration"),
                bitrate=meta.get("bitrate"),
            )
        entity_meta = {"original": original, "small": _dims(preview["width"], preview["height"])}
    if record.get("focus_x") is not None:
        entity_meta["focus"] = {"x": record["focus_x"], "y": record["focus_y"]}
    return {
        "id": str(record["id"]),
        "type": record["kind"] if record["state"] != "failed" else "unknown",
        "url": main["key"] if main else None,
        "preview_url": preview["key"] if preview else None,
        "remote_url": None,
        "preview_remote_url": None,
        "text_url": None,
        "meta": entity_meta,
        "description": record.get("description"),
        "blurhash": record.get("blurhash"),
        "variants": [
            {"type": v["role"], "url": v["key"], "width": v["width"], "height": v["height"]} for v in variants
        ],
    }


class MediaService:
    def __init__(self, settings: Settings, graph: GraphClient, ids: SnowflakeGenerator) -> None:
        self.settings = settings
        self.graph = MediaGraph(graph)
        self.ids = ids
        self.store = object_store(settings)
        self.signer = UrlSigner(settings)
        self._sweeper: asyncio.Task | None = None
        self._reuse = min(SIGNED_REUSE_SECONDS, settings.media_url_ttl_seconds / 16)
        self._signed: dict[tuple[str, int], tuple[float, str]] = {}  # (key, media id) -> (reusable until, URL)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Begin the periodic sweep for records a crashed replica or worker left in ``processing``."""
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def _sweep_forever(self) -> None:
        interval = self.settings.media_sweep_interval_seconds
        while True:
            try:
                await self.relaunch_stale()
            except Exception:
                log.exception("media sweep failed")
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))  # replicas drift apart instead of colliding

    async def relaunch_stale(self) -> int:
        """Re-launch every record whose processing started too long ago; returns how many this replica took."""
        cutoff = now_ms() - int(self.settings.media_stale_seconds * 1000)
        taken = 0
        for row in await self.graph.stale(cutoff):
            if await self.graph.claim_relaunch(row["id"], row["attempt_at"], now_ms()):
                launch(row["id"], self.settings)
                taken += 1
        return taken

    async def _relaunch_if_stale(self, record: Row) -> None:
        cutoff = now_ms() - int(self.settings.media_stale_seconds * 1000)
        if record["state"] == "processing" and record["attempt_at"] < cutoff:
            if await self.graph.claim_relaunch(record["id"], record["attempt_at"], now_ms()):
                log.warning("re-launching media %s, stuck in processing", record["id"])
                launch(record["id"], self.settings)

    # -- upload -------------------------------------------------------------

    async def _stage(self, upload: UploadFile) -> tuple[Path, bytes, int, str]:
        """Copy the upload to a scratch file, hashing as it goes; (path, first bytes, size, sha256)."""
        limit = max(self.settings.media_image_max_bytes, self.settings.media_video_max_bytes)
        temp = self.store.temp_path()
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            async with aiofiles.open(temp, "wb") as out:
                while chunk := await upload.read(READ_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"File is too large: at most {limit // (1024 * 1024)} MB")
                    if len(head) < validation.SNIFF_BYTES:
                        head += chunk[: validation.SNIFF_BYTES - len(head)]
                    digest.update(chunk)
                    await out.write(chunk)
        except BaseException:
            await aiofiles.os.unlink(temp)
            raise
        return temp, head, size, digest.hexdigest()

    async def _inspect(self, path: Path, head: bytes, size: int) -> validation.Inspection:
        try:
            return await validation.inspect_upload(str(path), head, size, self.settings)
        except validation.Rejected as exc:
            sniffed = validation.sniff(head)
            kind = sniffed.kind if sniffed else "unknown"
            if isinstance(exc, validation.TooLarge):
                metrics.inc(metrics.MEDIA_UPLOADS, kind=kind, outcome="too_large")
                raise PayloadTooLarge(str(exc)) from None
            if isinstance(exc, validation.Unsupported):
                metrics.inc(metrics.MEDIA_UPLOADS, kind=kind, outcome="unsupported")
                raise UnsupportedMediaType(str(exc)) from None
            metrics.inc(metrics.MEDIA_UPLOADS, kind=kind, outcome="invalid")
            raise Unprocessable(str(exc)) from None

    def _check_description(self, description: str | None) -> None:
        limit = self.settings.media_description_max
        if description is not None and len(description) > limit:
            raise Unprocessable(f"Validation failed: description is too long (at most {limit} characters)")

    def _check_story(self, found: validation.Inspection, size: int) -> None:
        """A story takes a JPEG or PNG photo or a short MP4 video, within the story limits."""
        if found.format not in STORY_FORMATS:
            metrics.inc(metrics.MEDIA_UPLOADS, kind=found.kind, outcome="unsupported")
            raise UnsupportedMediaType("File type is not supported for stories: upload a JPEG or PNG photo or an MP4")
        limit = self.settings.story_image_max_bytes if found.kind == "image" else self.settings.story_video_max_bytes
        if size > limit:
            metrics.inc(metrics.MEDIA_UPLOADS, kind=found.kind, outcome="too_large")
            raise PayloadTooLarge(f"File is too large: story {found.kind}s may be at most {limit // (1024 * 1024)} MB")
        if found.kind == "video" and found.duration > self.settings.story_video_max_seconds:
            metrics.inc(metrics.MEDIA_UPLOADS, kind=found.kind, outcome="invalid")
            raise Unprocessable(
                f"Video is too long for a story: at most {self.settings.story_video_max_seconds:.0f} seconds"
            )

    async def upload(
        self,
        account_id: int,
        upload: UploadFile,
        description: str | None,
        focus: str | None,
        purpose: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Accept an upload; returns (MediaAttachment entity, whether it is ready already).

        ``purpose="story"`` (``graph.media.STORY_PURPOSE``): an upload for a story, within the story limits;
        processing adds its 9:16 frame, and only a story may use it."""
        self._check_description(description)
        point = parse_focus(focus)
        path, head, size, sha256 = await self._stage(upload)
        try:
            found = await self._inspect(path, head, size)
            if purpose == STORY_PURPOSE:
                self._check_story(found, size)
        except BaseException:
            await aiofiles.os.unlink(path)
            raise
        try:
            await self.store.put_file(original_key(sha256), path)
        except BaseException:
            metrics.inc(metrics.MEDIA_UPLOADS, kind=found.kind, outcome="failed")
            raise
        now = now_ms()
        record: Row = {
            "id": self.ids.next_id(),
            "account_id": account_id,
            "kind": "gifv" if found.silent else found.kind,
            "state": "processing",
            "sha256": sha256,
            "size": size,
            "format": found.format,
            "content_type": found.content_type,
            "description": description or None,
            "created_at": now,
            "attempt_at": now,
            "purpose": purpose,
        }
        if point is not None:
            record["focus_x"], record["focus_y"] = point
        shared = await self._processed_twin(sha256, purpose)
        if shared is not None:
            record.update(shared, state="ready", processed_at=now)
        record = {k: v for k, v in record.items() if v is not None}
        try:
            await self.graph.create(record)
        except BaseException:
            metrics.inc(metrics.MEDIA_UPLOADS, kind=found.kind, outcome="failed")
            raise
        metrics.inc(metrics.MEDIA_UPLOADS, kind=found.kind, outcome="accepted")
        if shared is None:
            ref = launch(record["id"], self.settings)
            small = found.kind == "image" and found.width * found.height <= self.settings.media_sync_max_pixels
            if small:
                await _wait_briefly(ref, self.settings.media_sync_wait_seconds)
                record = await self.graph.get(record["id"]) or record
        return self.entity(record), record["state"] == "ready"

    async def _processed_twin(self, sha256: str, purpose: str | None) -> Row | None:
        """Variants and metadata of an earlier ready upload of the same bytes, if they are all still stored
        (and include a story's frame, for a story)."""
        twin = await self.graph.find_ready_by_sha256(sha256)
        if twin is None:
            return None
        variants = orjson.loads(twin.get("variants") or "[]")
        if not variants or not all(v["key"].startswith(SERVABLE_PREFIXES) for v in variants):
            return None
        if purpose == STORY_PURPOSE and not any(v["role"] == "story" for v in variants):
            return None
        for variant in variants:
            if not await self.store.exists(variant["key"]):
                return None
        return {k: twin.get(k) for k in ("kind", "variants", "meta", "blurhash")}

    # -- the uploader's view ------------------------------------------------

    async def _own_unattached(self, account_id: int, media_id: int) -> Row:
        record = await self.graph.get(media_id)
        if record is None or record["account_id"] != account_id or record.get("status_id") is not None:
            raise NotFound("Record not found")
        return record

    async def get_own(self, account_id: int, media_id: int) -> tuple[dict[str, Any], str]:
        """The uploader's view of an unattached upload: (entity, state); others get a 404."""
        record = await self._own_unattached(account_id, media_id)
        await self._relaunch_if_stale(record)
        if record["state"] == "failed":
            raise Unprocessable(f"Media processing failed: {record.get('failure') or 'unknown error'}")
        return self.entity(record), record["state"]

    async def update_own(
        self, account_id: int, media_id: int, description: str | None, focus: str | None
    ) -> dict[str, Any]:
        """Change the description and/or focal point of an unattached upload of ``account_id``."""
        await self._own_unattached(account_id, media_id)
        changes: dict[str, Any] = {}
        if description is not None:
            self._check_description(description)
            changes["description"] = description or None
        point = parse_focus(focus)
        if point is not None:
            changes["focus_x"], changes["focus_y"] = point
        record = await self.graph.update_unattached(media_id, account_id, changes)
        if record is None:  # attached by a status in the meantime
            raise NotFound("Record not found")
        return self.entity(record)

    # -- statuses -------------------------------------------------------------

    async def attach_media_tx(
        self, tx: AsyncManagedTransaction, account_id: int, status_id: int, media_ids: list[int]
    ) -> None:
        """Attach ``media_ids`` (in that order) to the new status ``status_id``, inside the caller's write
        transaction: call it from the function you pass to ``GraphClient.write_transaction`` that creates the
        status, so both commit or neither does. Every id must exist, belong to ``account_id``, be ready and not
        be attached yet, and there may be at most ``media_max_per_status``; otherwise it raises
        ``Unprocessable`` (a 422), which aborts the transaction. Store ``media_ids`` on the status too, and pass
        them to ``attachments`` when hydrating."""
        if len(media_ids) > self.settings.media_max_per_status:
            raise Unprocessable(f"Validation failed: at most {self.settings.media_max_per_status} media attachments")
        ids = list(dict.fromkeys(media_ids))
        if len(ids) != len(media_ids):
            raise Unprocessable("Validation failed: the same media is attached twice")
        if not ids:
            return
        rows = await attachable_tx(tx, ids)
        for media_id in ids:
            row = rows.get(media_id)
            if row is None or row["account_id"] != account_id:
                raise Unprocessable(f"Validation failed: media {media_id} not found")
            if row["status_id"] is not None:
                raise Unprocessable(f"Validation failed: media {media_id} is already attached to a status")
            if row.get("purpose") == STORY_PURPOSE:
                raise Unprocessable(f"Validation failed: media {media_id} was uploaded for a story")
            if row["state"] == "processing":
                raise Unprocessable("Cannot attach files that have not finished processing. Try again in a moment!")
            if row["state"] != "ready":
                raise Unprocessable(f"Validation failed: media {media_id} could not be processed")
        if await attach_tx(tx, account_id, status_id, ids) != len(ids):  # taken by a concurrent status
            raise Unprocessable("Validation failed: media is already attached to a status")

    async def attachment_records(self, media_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Unsigned attachments (``unsigned_attachment``) by media id, for any number of statuses in ONE graph
        query: collect the ``media_ids`` of every status in a page, call this once, then pick each status's
        attachments in its own order. They hold no URL, so they may be cached as long as the post is; ``render``
        signs them."""
        rows = await self.graph.attachment_rows(media_ids)
        return {media_id: unsigned_attachment(row) for media_id, row in rows.items()}

    async def attachments(self, media_ids: list[int]) -> dict[int, dict[str, Any]]:
        """MediaAttachment entities by media id (``attachment_records``, rendered): freshly signed URLs."""
        return {media_id: self.render(row) for media_id, row in (await self.attachment_records(media_ids)).items()}

    # -- entities and serving ---------------------------------------------------

    def entity(self, record: Row) -> dict[str, Any]:
        """Mastodon's MediaAttachment for a record; URLs are null until it is ready."""
        return self.render(unsigned_attachment(record))

    def render(self, unsigned: dict[str, Any]) -> dict[str, Any]:
        """The MediaAttachment of an unsigned attachment: each object key becomes a URL signed now (or within the
        last ``SIGNED_REUSE_SECONDS``), so a cached attachment never hands out an expired URL."""
        media_id = int(unsigned["id"])
        sign = self._sign
        main, preview = unsigned["url"], unsigned["preview_url"]
        return {
            **unsigned,
            "url": sign(main, media_id) if main else None,
            "preview_url": sign(preview, media_id) if preview else None,
            "variants": [{**variant, "url": sign(variant["url"], media_id)} for variant in unsigned["variants"]],
        }

    def _sign(self, key: str, media_id: int) -> str:
        """``UrlSigner.url``, reused for a short while: signing every URL of every photo of a page on every read
        was a tenth of a home read's CPU (``docs/performance.md``)."""
        now = time.monotonic()
        memo = self._signed.get((key, media_id))
        if memo is not None and memo[0] > now:
            return memo[1]
        if len(self._signed) >= SIGNED_MEMO_MAX:
            self._signed.clear()
        url = self.signer.url(key, media_id)
        self._signed[(key, media_id)] = (now + self._reuse, url)
        return url

    async def served_object(
        self, path: str, media_id: str | None, expires: str | None, sig: str | None
    ) -> ServedObject:
        """The variant a signed ``/media/...`` URL names; 403 for a bad or expired signature, 404 if absent,
        not a variant of that upload, or its post was deleted (the URL may still be valid for hours)."""
        signed = self.signer.verify(path, media_id, expires, sig)
        if signed is None:
            raise Forbidden("Invalid or expired media URL")
        media, until = signed
        key = path.removeprefix(MEDIA_PATH_PREFIX)
        extension = key[key.rfind(".") :]
        if not key.startswith(SERVABLE_PREFIXES) or extension not in CONTENT_TYPES:
            raise NotFound("Record not found")
        record = await self.graph.serving(media)
        if record is None or key not in {v["key"] for v in orjson.loads(record.get("variants") or "[]")}:
            raise NotFound("Record not found")
        attached = record["status_id"] is not None
        if attached and record["visibility"] is None:  # the post is gone
            raise NotFound("Record not found")
        info = await self.store.stat(key)
        if info is None:
            raise NotFound("Record not found")
        # An upload not attached yet is the uploader's alone; attached, it is as public as its post.
        return ServedObject(
            key, info, CONTENT_TYPES[extension], until, attached and record["visibility"] in PUBLIC_VISIBILITIES
        )


async def _wait_briefly(ref: ray.ObjectRef, seconds: float) -> None:
    """Wait up to ``seconds`` for the task; it goes on regardless, and its failures are logged, not raised here."""
    future = asyncio.wrap_future(ref.future())
    future.add_done_callback(_log_task_error)
    await asyncio.wait({future}, timeout=seconds)


def _log_task_error(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("media task failed: %r", future.exception())
