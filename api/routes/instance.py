"""Instance metadata (``/api/v1/instance``, ``/api/v2/instance``) and the health check.

Clients choose endpoints from this: Mastodon.py checks the version before
calling a method (4.0 for followed tags, 3.5 for trends) and, for the public
and hashtag timelines, ``configuration.timelines_access`` (Mastodon 4.5's key;
every post here is local, so remote feeds are "disabled"). Mastodon.py asks
for both documents with a trailing slash, which is served as is rather than
redirected; unknown query parameters (``lang``) are ignored.
"""

from __future__ import annotations

import asyncio

import ray
from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse

from api.auth import context
from api.openapi import doc
from api.schemas import Health, InstanceV1, InstanceV2

router = APIRouter()
VERSION = "4.3.0 (compatible; raygram 0.1.0)"


def configuration(ctx_settings) -> dict:
    return {
        "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
        "statuses": {"max_characters": 2200, "max_media_attachments": 10, "characters_reserved_per_url": 23},
        "media_attachments": {
            "supported_mime_types": [
                "image/jpeg",
                "image/png",
                "image/webp",
                "image/gif",
                "video/mp4",
                "video/quicktime",
                "video/webm",
            ],
            "image_size_limit": 16 * 1024 * 1024,
            "image_matrix_limit": 33_177_600,
            "video_size_limit": 100 * 1024 * 1024,
            "video_frame_rate_limit": 120,
            "video_matrix_limit": 8_294_400,
        },
        "polls": {"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300, "max_expiration": 2629746},
    }


TIMELINES_ACCESS = {
    "live_feeds": {"local": "public", "remote": "disabled"},
    "hashtag_feeds": {"local": "public", "remote": "disabled"},
    "trending_link_feeds": {"local": "disabled", "remote": "disabled"},
}


@router.get("/api/v1/instance/", include_in_schema=False)
@router.get("/api/v1/instance", **doc(InstanceV1, stores=False))
async def instance_v1(request: Request) -> ORJSONResponse:
    s = context(request).settings
    return ORJSONResponse(
        {
            "uri": s.instance_domain,
            "title": s.instance_title,
            "short_description": s.instance_description,
            "description": s.instance_description,
            "email": s.contact_email,
            "version": VERSION,
            "urls": {"streaming_api": s.base_url.replace("http", "ws", 1)},
            "stats": {"user_count": 0, "status_count": 0, "domain_count": 1},
            "thumbnail": None,
            "languages": ["en"],
            "registrations": True,
            "approval_required": False,
            "invites_enabled": False,
            "configuration": configuration(s),
            "contact_account": None,
            "rules": [],
        }
    )


@router.get("/api/v2/instance/", include_in_schema=False)
@router.get("/api/v2/instance", **doc(InstanceV2, stores=False))
async def instance_v2(request: Request) -> ORJSONResponse:
    s = context(request).settings
    return ORJSONResponse(
        {
            "domain": s.instance_domain,
            "title": s.instance_title,
            "version": VERSION,
            "source_url": "https://github.com/raygram/raygram",
            "description": s.instance_description,
            "usage": {"users": {"active_month": 0}},
            "thumbnail": {"url": f"{s.base_url}/packs/media/images/preview.png"},
            "languages": ["en"],
            "configuration": {
                "urls": {"streaming": s.base_url.replace("http", "ws", 1)},
                **configuration(s),
                "translation": {"enabled": False},
                "timelines_access": TIMELINES_ACCESS,
            },
            "registrations": {"enabled": True, "approval_required": False, "message": None},
            "api_versions": {"mastodon": 2},
            "contact": {"email": s.contact_email, "account": None},
            "rules": [],
        }
    )


async def _check(coro) -> str:
    try:
        await asyncio.wait_for(coro, timeout=3)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"[:300]


async def _ray_alive() -> None:
    if not ray.is_initialized():
        raise RuntimeError("ray is not initialized in this process")
    await asyncio.to_thread(ray.cluster_resources)


@router.get(
    "/health", **doc(Health, stores=False, responses={503: {"model": Health, "description": "A dependency is down"}})
)
async def health(request: Request) -> ORJSONResponse:
    """Reports each dependency; 503 when one of them is down."""
    ctx = context(request)
    checks = {
        "redis": await _check(ctx.redis.ping()),
        "graph": await _check(ctx.graph.ping()),
        "ray": await _check(_ray_alive()),
    }
    healthy = all(v == "ok" for v in checks.values())
    return ORJSONResponse({"status": "ok" if healthy else "degraded", **checks}, status_code=200 if healthy else 503)
