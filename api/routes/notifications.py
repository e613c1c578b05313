"""Notifications (v1 and grouped v2), dismissal, markers and the unread count."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from api.auth import context, scoped
from api.entities import iso_time, notification_entity, notification_groups_entity
from api.pagination import PageParams, link_header
from api.params import read_params, validate
from api.routes.accounts import parse_id
from services.auth import Principal
from services.errors import Unprocessable
from services.notifications import TYPES, NotificationFilter

router = APIRouter()


class NotificationQuery(PageParams):
    types: list[str] | str = Field(default_factory=list)
    exclude_types: list[str] | str = Field(default_factory=list)
    account_id: int | None = Field(default=None, ge=0, lt=2**63)


class MarkerQuery(BaseModel):
    timeline: list[str] | str = Field(default_factory=list)


def type_set(value: list[str] | str) -> set[str]:
    values = {value} if isinstance(value, str) else set(value)
    unknown = values - set(TYPES) - {"admin.sign_up", "admin.report"}
    if unknown:
        raise Unprocessable(f"Validation failed: unknown notification types: {', '.join(sorted(unknown))}")
    return values


async def _filter(request: Request) -> NotificationFilter:
    q = validate(NotificationQuery, await read_params(request))
    return NotificationFilter(
        q.max_id,
        q.since_id,
        q.min_id,
        q.limit,
        frozenset(type_set(q.types)),
        frozenset(type_set(q.exclude_types)),
        q.account_id,
    )


@router.get("/api/v1/notifications")
async def notifications(
    request: Request, principal: Principal = Depends(scoped("read:notifications"))
) -> ORJSONResponse:
    ctx = context(request)
    found = await ctx.notifications.page(principal.account_id, await _filter(request))  # type: ignore[arg-type]
    headers = link_header(request, found[0].record["id"], found[-1].record["id"]) if found else {}
    return ORJSONResponse([notification_entity(n, ctx.settings) for n in found], headers=headers)


@router.get("/api/v2/notifications")
async def grouped_notifications(
    request: Request, principal: Principal = Depends(scoped("read:notifications"))
) -> ORJSONResponse:
    ctx = context(request)
    groups = await ctx.notifications.grouped(principal.account_id, await _filter(request))  # type: ignore[arg-type]
    ids = [n.record["id"] for _, members in groups for n in members]
    headers = link_header(request, max(ids), min(ids)) if ids else {}
    return ORJSONResponse(notification_groups_entity(groups, ctx.settings), headers=headers)


@router.get("/api/v1/notifications/unread_count")
async def unread_count(
    request: Request, principal: Principal = Depends(scoped("read:notifications"))
) -> ORJSONResponse:
    count = await context(request).notifications.unread_count(principal.account_id)  # type: ignore[arg-type]
    return ORJSONResponse({"count": count})


@router.post("/api/v1/notifications/clear")
async def clear(request: Request, principal: Principal = Depends(scoped("write:notifications"))) -> ORJSONResponse:
    await context(request).notifications.clear(principal.account_id)  # type: ignore[arg-type]
    return ORJSONResponse({})


@router.get("/api/v1/notifications/{notification_id}")
async def get_notification(
    notification_id: str, request: Request, principal: Principal = Depends(scoped("read:notifications"))
) -> ORJSONResponse:
    ctx = context(request)
    found = await ctx.notifications.get(principal.account_id, parse_id(notification_id))  # type: ignore[arg-type]
    return ORJSONResponse(notification_entity(found, ctx.settings))


@router.post("/api/v1/notifications/{notification_id}/dismiss")
async def dismiss(
    notification_id: str, request: Request, principal: Principal = Depends(scoped("write:notifications"))
) -> ORJSONResponse:
    await context(request).notifications.dismiss(principal.account_id, parse_id(notification_id))  # type: ignore[arg-type]
    return ORJSONResponse({})


def _marker_entity(marker: dict) -> dict:
    return {
        "last_read_id": str(marker["last_read_id"]),
        "version": marker["version"],
        "updated_at": iso_time(marker["updated_at"]),
    }


@router.get("/api/v1/markers")
async def get_markers(request: Request, principal: Principal = Depends(scoped("read:statuses"))) -> ORJSONResponse:
    query = validate(MarkerQuery, await read_params(request))
    timelines = [query.timeline] if isinstance(query.timeline, str) else query.timeline
    markers = await context(request).notifications.markers(principal.account_id, timelines)  # type: ignore[arg-type]
    return ORJSONResponse({t: _marker_entity(m) for t, m in markers.items()})


@router.post("/api/v1/markers")
async def set_markers(request: Request, principal: Principal = Depends(scoped("write:statuses"))) -> ORJSONResponse:
    """Accepts ``home[last_read_id]=…`` form fields or ``{"home": {"last_read_id": …}}`` JSON."""
    params = await read_params(request)
    updates: dict[str, str] = {}
    for timeline in ("home", "notifications"):
        nested = params.get(timeline)
        value = params.get(f"{timeline}[last_read_id]") or (
            nested.get("last_read_id") if isinstance(nested, dict) else None
        )
        if value is not None:
            if not str(value).isdigit() or len(str(value)) > 19:
                raise Unprocessable(f"Validation failed: {timeline}.last_read_id must be an id")
            updates[timeline] = str(value)
    if not updates:
        raise Unprocessable("Validation failed: give home[last_read_id] or notifications[last_read_id]")
    markers = await context(request).notifications.set_markers(principal.account_id, updates)  # type: ignore[arg-type]
    return ORJSONResponse({t: _marker_entity(m) for t, m in markers.items()})
