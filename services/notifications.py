"""Reading notifications: filtered pages, grouped pages (Mastodon 4.3), dismissal, markers.

Notifications are made by the ``Notifier`` actor; this service only reads
and removes them, and hydrates their accounts and posts in one batch each.
Notifications from an account blocked either way, or muted with its
notifications, are left out as they are read (one cached look-up per chunk,
``services.relations``), so a block or mute takes effect on the next read.
Markers, dismissals and clears are answered once Redis has them on disk
(``redis_store.notifications``): they are not in the graph to be rebuilt from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis_store.notifications import NotificationStore
from redis_store.timelines import PageBounds
from services.errors import NotFound
from services.hydrate import HydratedStatus, Hydrator
from services.relations import RelationService

TYPES = ("mention", "status", "reblog", "follow", "follow_request", "favourite", "poll", "update")
SCAN_CHUNK = 100
MAX_SCANNED = 2000  # a filtered page looks at most this far back


@dataclass(frozen=True)
class NotificationFilter:
    """One page request: Mastodon's cursors, the limit, and which notifications count."""

    max_id: int | None
    since_id: int | None
    min_id: int | None
    limit: int
    types: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    account_id: int | None = None


@dataclass
class HydratedNotification:
    record: dict[str, Any]
    account: dict[str, Any]
    status: HydratedStatus | None


class NotificationService:
    def __init__(self, store: NotificationStore, hydrator: Hydrator, relations: RelationService) -> None:
        self.store = store
        self.hydrator = hydrator
        self.relations = relations

    async def _records(
        self, user_id: int, bounds: PageBounds, limit: int, types: set[str], exclude: set[str], account_id: int | None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` records in the window that pass the filters, scanning in chunks."""
        found: list[dict[str, Any]] = []
        scanned = 0
        while len(found) < limit and scanned < MAX_SCANNED:
            ids = await self.store.page_ids(user_id, bounds, SCAN_CHUNK)
            if not ids:
                break
            scanned += len(ids)
            records = await self.store.records(user_id, ids)
            silenced = await self._silenced(user_id, [r["account_id"] for r in records.values()])
            for notification_id in ids:
                record = records.get(notification_id)
                if record is None or (types and record["type"] not in types) or record["type"] in exclude:
                    continue
                if record["account_id"] in silenced:
                    continue
                if account_id is not None and record["account_id"] != account_id:
                    continue
                found.append(record)
            last = ids[-1]
            bounds = (
                PageBounds.from_cursors(bounds_max(bounds), None, last)
                if bounds.ascending
                else PageBounds(bounds.lo, f"({last:019d}", False)
            )
        found = found[:limit]
        return sorted(found, key=lambda r: r["id"], reverse=True)

    async def _silenced(self, user_id: int, actors: list[int]) -> set[int]:
        """Actors whose notifications the user does not see: blocked either way, or muted with notifications."""
        now = self.relations.now_ms()
        return {
            actor
            for actor, flags in (await self.relations.flags(user_id, actors)).items()
            if flags.hidden or (flags.muting_notifications and flags.muted_at(now))
        }

    async def hydrate(self, records: list[dict[str, Any]], viewer_id: int) -> list[HydratedNotification]:
        accounts = await self.hydrator.account_rows([r["account_id"] for r in records])
        status_ids = [r["status_id"] for r in records if r.get("status_id") is not None]
        statuses = {h.id: h for h in await self.hydrator.hydrate(status_ids, viewer_id=viewer_id)}
        result = []
        for record in records:
            status = statuses.get(record["status_id"]) if record.get("status_id") is not None else None
            if record["account_id"] not in accounts or (record.get("status_id") is not None and status is None):
                continue  # the actor or the post is gone
            result.append(HydratedNotification(record, accounts[record["account_id"]], status))
        return result

    async def page(self, user_id: int, query: NotificationFilter) -> list[HydratedNotification]:
        bounds = PageBounds.from_cursors(query.max_id, query.since_id, query.min_id)
        records = await self._records(
            user_id, bounds, query.limit, set(query.types), set(query.exclude), query.account_id
        )
        return await self.hydrate(records, user_id)

    async def get(self, user_id: int, notification_id: int) -> HydratedNotification:
        record = (await self.store.records(user_id, [notification_id])).get(notification_id)
        if record is None or record["recipient_id"] != user_id:
            raise NotFound("Record not found")
        if await self._silenced(user_id, [record["account_id"]]):
            raise NotFound("Record not found")
        hydrated = await self.hydrate([record], user_id)
        if not hydrated:
            raise NotFound("Record not found")
        return hydrated[0]

    async def dismiss(self, user_id: int, notification_id: int) -> None:
        await self.get(user_id, notification_id)  # 404 for someone else's
        await self.store.dismiss(user_id, notification_id)

    async def clear(self, user_id: int) -> None:
        await self.store.clear(user_id)

    async def grouped(self, user_id: int, query: NotificationFilter) -> list[tuple[str, list[HydratedNotification]]]:
        """Groups (by ``group_key``) of the notifications in one page, most recent group first."""
        notifications = await self.page(user_id, query)
        groups: dict[str, list[HydratedNotification]] = {}
        for notification in notifications:
            groups.setdefault(notification.record["group_key"], []).append(notification)
        return list(groups.items())

    async def unread_count(self, user_id: int) -> int:
        markers = await self.store.get_markers(user_id)
        last_read = str(markers.get("notifications", {}).get("last_read_id") or "")
        # A marker stored before the API checked ids as ASCII digits (say "²") counts as no marker.
        valid = last_read.isascii() and last_read.isdigit()
        return await self.store.count_after(user_id, int(last_read) if valid else None)

    async def markers(self, user_id: int, timelines: list[str]) -> dict[str, dict[str, Any]]:
        stored = await self.store.get_markers(user_id)
        return {t: stored[t] for t in timelines if t in stored}

    async def set_markers(self, user_id: int, updates: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Move the user's read markers; answered once they are on disk (Redis is their only home)."""
        stored = await self.store.get_markers(user_id)
        now_ms = int(time.time() * 1000)
        changed = {
            timeline: {
                "last_read_id": last_read_id,
                "version": int(stored.get(timeline, {}).get("version", 0)) + 1,
                "updated_at": now_ms,
            }
            for timeline, last_read_id in updates.items()
        }
        if changed:
            await self.store.set_markers(user_id, changed)
        return changed


def bounds_max(bounds: PageBounds) -> int | None:
    return int(bounds.hi[1:]) if bounds.hi.startswith("(") else None
