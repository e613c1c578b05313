"""Turn status ids into full records for the API, in one batch.

Statuses and their authors come from the Redis cache (one MGET each) and
fall back to the graph (one query each) for the misses, which are then
cached. Missing statuses (deleted) are dropped. Media attachments are
fetched in one more batch when a media service is wired in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from graph.accounts import AccountGraph
from graph.statuses import StatusGraph
from redis_store.cache import RecordCache

Row = dict[str, Any]
AttachmentLoader = Callable[[list[int]], Awaitable[dict[int, Row]]]


@dataclass
class HydratedStatus:
    status: Row
    account: Row
    media: list[Row] = field(default_factory=list)
    favourited: bool = False
    reblogged: bool = False


class Hydrator:
    def __init__(
        self,
        statuses: StatusGraph,
        accounts: AccountGraph,
        status_cache: RecordCache,
        account_cache: RecordCache,
    ) -> None:
        self.statuses = statuses
        self.accounts = accounts
        self.status_cache = status_cache
        self.account_cache = account_cache
        self.attachment_loader: AttachmentLoader | None = None

    async def status_rows(self, ids: list[int]) -> dict[int, Row]:
        found = await self.status_cache.get_many(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            loaded = await self.statuses.get_many(missing)
            await self.status_cache.put_many(loaded)
            found.update(loaded)
        return found

    async def account_rows(self, ids: list[int]) -> dict[int, Row]:
        unique = list(dict.fromkeys(ids))
        found = await self.account_cache.get_many(unique)
        missing = [i for i in unique if i not in found]
        if missing:
            loaded = await self.accounts.get_accounts(missing)
            await self.account_cache.put_many(loaded)
            found.update(loaded)
        return found

    async def hydrate(self, ids: list[int], viewer_id: int | None = None) -> list[HydratedStatus]:
        """Records for ``ids`` in the given order; ids of deleted posts are skipped."""
        statuses = await self.status_rows(ids)
        accounts = await self.account_rows([s["account_id"] for s in statuses.values()])
        media_ids = [m for s in statuses.values() for m in (s.get("media_ids") or [])]
        media = await self.attachment_loader(media_ids) if media_ids and self.attachment_loader else {}
        result = []
        for status_id in ids:
            status = statuses.get(status_id)
            if status is None or status["account_id"] not in accounts:
                continue
            attachments = [media[m] for m in (status.get("media_ids") or []) if m in media]
            result.append(HydratedStatus(status, accounts[status["account_id"]], attachments))
        return result
