"""The remote task that turns a stored original into variants and publishes the media record.

It runs in any Ray worker, on any node, and needs nothing from the replica that
launched it: it reads the record and the original from the graph and the
configured store (``media.store.object_store``), writes every variant to that store
(each atomically), and only then flips the record to ``ready``; a file it
cannot process leaves the record ``failed`` with a reason. Re-running it is
harmless — the variant keys depend only on the original's hash and the
pipeline version, and a record no longer processing is left alone — so Ray
may retry it after a worker or node crash (``max_retries``; with
``RAY_SCHEDULING=SPREAD`` tasks go to every node and a retry to a surviving one) and a replica may
re-launch it for a record left behind by a crashed replica.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import neo4j.exceptions
import ray

import metrics
from config import Settings, get_settings
from graph.driver import GraphClient, Row
from graph.media import STORY_PURPOSE, MediaGraph
from media.images import PIPELINE, ImageResult, Rendered, render_story_frame
from media.images import render_image as render_image_file
from media.store import ObjectStore, StoreUnavailable, object_store, original_key, variant_key
from media.video import render_video

# Graph and object store outages are worth a retry; everything else about a file is decided on the first run.
RETRYABLE = [
    neo4j.exceptions.ServiceUnavailable,
    neo4j.exceptions.SessionExpired,
    neo4j.exceptions.TransientError,
    StoreUnavailable,
]


def now_ms() -> int:
    return int(time.time() * 1000)


def _describe(variant: Rendered, key: str) -> dict[str, Any]:
    return {
        "name": variant.name,
        "role": variant.role,
        "key": key,
        "width": variant.width,
        "height": variant.height,
        "content_type": variant.content_type,
        "size": len(variant.data),
    }


async def _publish_images(
    store: ObjectStore, sha256: str, result: ImageResult, prefix: str = ""
) -> list[dict[str, Any]]:
    published = []
    for variant in result.variants:
        key = variant_key(sha256, prefix + variant.name, PIPELINE)
        await store.put_bytes(key, variant.data)
        published.append(_describe(variant, key))
    return published


async def _publish_story_frame(store: ObjectStore, sha256: str, frame: Rendered) -> dict[str, Any]:
    key = variant_key(sha256, frame.name, PIPELINE)
    await store.put_bytes(key, frame.data)
    return _describe(frame, key)


async def _image_fields(store: ObjectStore, record: Row) -> Row:
    story = record.get("purpose") == STORY_PURPOSE
    async with store.local_file(original_key(record["sha256"])) as original:
        result = render_image_file(original)
        frame = render_story_frame(original) if story else None
    variants = await _publish_images(store, record["sha256"], result)
    if frame is not None:
        variants.append(await _publish_story_frame(store, record["sha256"], frame))
    meta = {"width": result.width, "height": result.height}
    return {"variants": json.dumps(variants), "meta": json.dumps(meta), "blurhash": result.blurhash}


async def _video_fields(store: ObjectStore, record: Row) -> Row:
    sha256 = record["sha256"]
    scratch = store.temp_path(".mp4")
    try:
        async with store.local_file(original_key(sha256)) as original:
            result = render_video(original, scratch)
        variants = await _publish_images(store, sha256, result.poster, prefix="poster-")
        if record.get("purpose") == STORY_PURPOSE:  # the poster in the story's 9:16 frame, from its widest variant
            poster = render_story_frame(result.poster.variants[0].data, "poster-story")
            variants.append(await _publish_story_frame(store, sha256, poster))
        key = variant_key(sha256, "web.mp4", PIPELINE)
        size = scratch.stat().st_size
        await store.put_file(key, scratch)
    finally:
        scratch.unlink(missing_ok=True)
    info = result.info
    variants.append(
        {"name": "web.mp4", "role": "video", "key": key, "width": result.width, "height": result.height,
         "content_type": "video/mp4", "size": size}
    )  # fmt: skip
    meta = {
        "width": info.width,
        "height": info.height,
        "duration": info.duration,
        "fps": info.fps,
        "has_audio": info.has_audio,
        "bitrate": int(record["size"] * 8 / info.duration) if info.duration else 0,
    }
    return {"variants": json.dumps(variants), "meta": json.dumps(meta), "blurhash": result.poster.blurhash}


async def process(media_id: int, settings: Settings) -> str:
    """Process one record to its final state; returns that state ("ready", "failed", or "missing")."""
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    try:
        media = MediaGraph(graph)
        record = await media.mark_started(media_id, now_ms())
        if record is None:  # already finished by an earlier run, or gone
            existing = await media.get(media_id)
            return existing["state"] if existing else "missing"
        store = object_store(settings)
        started = time.perf_counter()
        try:
            if record["kind"] == "image":
                fields = await _image_fields(store, record)
            else:
                fields = await _video_fields(store, record)
        except StoreUnavailable:  # not the file's fault: Ray retries the task, or the sweep re-launches it
            raise
        except Exception as exc:  # any reason this file cannot be processed ends in `failed`, with that reason
            reason = f"{exc.__class__.__name__}: {exc}"[:500]
            await media.mark_failed(media_id, reason, now_ms())
            metrics.inc(metrics.MEDIA_PROCESSED, kind=record["kind"], state="failed")
            metrics.observe(metrics.MEDIA_PROCESSING, time.perf_counter() - started, kind=record["kind"])
            return "failed"
        await media.mark_ready(media_id, {**fields, "processed_at": now_ms()})
        metrics.inc(metrics.MEDIA_PROCESSED, kind=record["kind"], state="ready")
        metrics.observe(metrics.MEDIA_PROCESSING, time.perf_counter() - started, kind=record["kind"])
        return "ready"
    finally:
        await graph.close()


@ray.remote(num_cpus=1, max_retries=3, retry_exceptions=RETRYABLE)
def process_media(media_id: int) -> str:
    """Ray entry point: see ``process``. Settings come from the worker's environment, as everywhere."""
    return asyncio.run(process(media_id, get_settings()))


def launch(media_id: int, settings: Settings) -> ray.ObjectRef:
    """Start processing ``media_id`` in the cluster without waiting for it."""
    return process_media.options(
        max_retries=settings.media_task_max_retries, scheduling_strategy=settings.ray_scheduling
    ).remote(media_id)
