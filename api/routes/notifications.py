"""Notifications (v1 and grouped v2), dismissal, markers and the unread count."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from api.auth import context, scoped
from api.entities import iso_time, notification_entity, notification_groups_entity
from api.openapi import PARAMS_ERRORS, doc, request_body
from api.pagination import PageParams, link_header
from api.params import ID_SCHEMA, Id, IdPath, parse_id, read_params, validate
from api.schemas import Empty, GroupedNotificationsResults, Markers, Notification, UnreadCount
from services.auth import Principal
from services.errors import Unprocessable
from services.notifications import TYPES, NotificationFilter

router = APIRouter()
FilterType = Literal[(*TYPES, "admin.sign_up", "admin.report")]  # type: ignore[valid-type]


class NotificationQuery(PageParams):
    types: list[FilterType] | FilterType = Field(default_factory=list, description="Only these types")
    exclude_types: list[FilterType] | FilterType = Field(default_factory=list, description="All but these types")
    account_id: Id | None = Field(default=None, description="Only notifications from this account")


class MarkerQuery(BaseModel):
    timeline: list[str] | str = Field(default_factory=list, description="`home` and/or `notifications`")


class MarkerUpdate(BaseModel):
    last_read_id: Id


class MarkersForm(BaseModel):
    """JSON ``{"home": {"last_read_id": …}}``; a form sends ``home[last_read_id]=…`` (see ``set_markers``)."""

    home: MarkerUpdate | None = None
    notifications: MarkerUpdate | None = None


MARKERS_BODY = request_body(MarkersForm)
MARKERS_BODY["content"]["application/x-www-form-urlencoded"]["schema"] = {
    "type": "object",
    "properties": {f"{t}[last_read_id]": ID_SCHEMA for t in ("home", "notifications")},
}


def type_set(value: list[str] | str) -> frozenset[str]:
    return frozenset({value} if isinstance(value, str) else value)


async def _filter(request: Request) -> NotificationFilter:
    q = validate(NotificationQuery, await read_params(request))
    return NotificationFilter(
        q.max_id,
        q.since_id,
        q.min_id,
        q.limit,
        type_set(q.types),
        type_set(q.exclude_types),
        q.account_id,
    )


@router.get(
    "/api/v1/notifications", **doc(list[Notification], query=NotificationQuery, auth="read:notifications", paged=True)
)
async def notifications(
    request: Request, principal: Principal = Depends(scoped("read:notifications"))
) -> ORJSONResponse:
    ctx = context(request)
    found = await ctx.notifications.page(principal.account_id, await _filter(request))  # type: ignore[arg-type]
    headers = link_header(request, found[0].record["id"], found[-1].record["id"]) if found else {}
    return ORJSONResponse([notification_entity(n, ctx.settings) for n in found], headers=headers)


@router.get(
    "/api/v2/notifications",
    **doc(GroupedNotificationsResults, query=NotificationQuery, auth="read:notifications", paged=True),
)
async def grouped_notifications(
    request: Request, principal: Principal = Depends(scoped("read:notifications"))
) -> ORJSONResponse:
    ctx = context(request)
    groups = await ctx.notifications.grouped(principal.account_id, await _filter(request))  # type: ignore[arg-type]
    ids = [n.record["id"] for _, members in groups for n in members]
    headers = link_header(request, max(ids), min(ids)) if ids else {}
    return ORJSONResponse(notification_groups_entity(groups, ctx.settings), headers=headers)


@router.get("/api/v1/notifications/unread_count", **doc(UnreadCount, auth="read:notifications"))
async def unread_count(
    request: Request, principal: Principal = Depends(scoped("read:notifications"))
) -> ORJSONResponse:
    count = await context(request).notifications.unread_count(principal.account_id)  # type: ignore[arg-type]
    return ORJSONResponse({"count": count})


@router.post("/api/v1/notifications/clear", **doc(Empty, auth="write:notifications"))
async def clear(request: Request, principal: Principal = Depends(scoped("write:notifications"))) -> ORJSONResponse:
    await context(request).notifications.clear(principal.account_id)  # type: ignore[arg-type]
    return ORJSONResponse({})


@router.get("/api/v1/notifications/{notification_id:id}", **doc(Notification, auth="read:notifications", errors=[404]))
async def get_notification(
    notification_id: IdPath, request: Request, principal: Principal = Depends(scoped("read:notifications"))
) -> ORJSONResponse:
    ctx = context(request)
    found = await ctx.notifications.get(principal.account_id, parse_id(notification_id))  # type: ignore[arg-type]
    return ORJSONResponse(notification_entity(found, ctx.settings))


@router.post(
    "/api/v1/notifications/{notification_id:id}/dismiss", **doc(Empty, auth="write:notifications", errors=[404])
)
async def dismiss(
    notification_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:notifications"))
) -> ORJSONResponse:
    await context(request).notifications.dismiss(principal.account_id, parse_id(notification_id))  # type: ignore[arg-type]
    return ORJSONResponse({})


def _marker_entity(marker: dict) -> dict:
    return {
        "last_read_id": str(marker["last_read_id"]),
        "version": marker["version"],
        "updated_at": iso_time(marker["updated_at"]),
    }


@router.get("/api/v1/markers", **doc(Markers, query=MarkerQuery, auth="read:statuses"))
async def get_markers(request: Request, principal: Principal = Depends(scoped("read:statuses"))) -> ORJSONResponse:
    query = validate(MarkerQuery, await read_params(request))
    timelines = [query.timeline] if isinstance(query.timeline, str) else query.timeline
    markers = await context(request).notifications.markers(principal.account_id, timelines)  # type: ignore[arg-type]
    return ORJSONResponse({t: _marker_entity(m) for t, m in markers.items()})


@router.post(
    "/api/v1/markers", **doc(Markers, auth="write:statuses", errors=PARAMS_ERRORS, extra={"requestBody": MARKERS_BODY})
)
async def set_markers(request: Request, principal: Principal = Depends(scoped("write:statuses"))) -> ORJSONResponse:
    """Accepts ``home[last_read_id]=…`` form fields or ``{"home": {"last_read_id": …}}`` JSON."""
    params = await read_params(request)
    for timeline in ("home", "notifications"):
        flat = params.pop(f"{timeline}[last_read_id]", None)
        if flat not in (None, ""):
            params[timeline] = {"last_read_id": flat}
    form = validate(MarkersForm, params)
    updates = {t: str(m.last_read_id) for t, m in (("home", form.home), ("notifications", form.notifications)) if m}
    if not updates:
        raise Unprocessable("Validation failed: give home[last_read_id] or notifications[last_read_id]")
    markers = await context(request).notifications.set_markers(principal.account_id, updates)  # type: ignore[arg-type]
    return ORJSONResponse({t: _marker_entity(m) for t, m in markers.items()})
