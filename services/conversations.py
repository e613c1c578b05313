"""Direct-message conversations as the API shows them: the user's list, read, delete.

The ``Notifier`` writes them (``redis_store.conversations``); this service
reads a page in one Redis call and hydrates its last statuses and
participants in one batch each. A conversation whose last status is gone (or
no longer visible to the user) shows without it, as Mastodon's does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis_store.conversations import ConversationStore
from services.errors import NotFound
from services.hydrate import HydratedStatus, Hydrator


@dataclass
class HydratedConversation:
    id: int
    unread: bool
    accounts: list[dict[str, Any]]
    last_status: HydratedStatus | None
    last_status_id: int  # the paging cursor


class ConversationService:
    def __init__(self, store: ConversationStore, hydrator: Hydrator) -> None:
        self.store = store
        self.hydrator = hydrator

    async def page(
        self, user_id: int, max_id: int | None, since_id: int | None, min_id: int | None, limit: int
    ) -> list[HydratedConversation]:
        return await self._hydrate(user_id, await self.store.page(user_id, max_id, since_id, min_id, limit))

    async def get(self, user_id: int, conversation_id: int) -> HydratedConversation:
        found = await self._hydrate(user_id, await self.store.records(user_id, [conversation_id]))
        if not found:
            raise NotFound("Record not found")
        return found[0]

    async def mark_read(self, user_id: int, conversation_id: int) -> HydratedConversation:
        if not await self.store.mark_read(user_id, conversation_id):
            raise NotFound("Record not found")
        return await self.get(user_id, conversation_id)

    async def remove(self, user_id: int, conversation_id: int) -> None:
        if not await self.store.remove(user_id, conversation_id):
            raise NotFound("Record not found")

    async def _hydrate(self, user_id: int, records: list[dict[str, Any]]) -> list[HydratedConversation]:
        statuses = {
            post.id: post
            for post in await self.hydrator.hydrate([r["last_status_id"] for r in records], viewer_id=user_id)
        }
        accounts = await self.hydrator.account_rows([a for r in records for a in r["accounts"]])
        return [
            HydratedConversation(
                r["id"],
                r["unread"],
                [accounts[a] for a in r["accounts"] if a in accounts],
                _visible(statuses.get(r["last_status_id"]), user_id),
                r["last_status_id"],
            )
            for r in records
        ]


def _visible(post: HydratedStatus | None, user_id: int) -> HydratedStatus | None:
    """The last status, if the user is still in its audience."""
    if post is None:
        return None
    status = post.status
    if (
        status["visibility"] == "direct"
        and user_id != status["account_id"]
        and user_id not in status.get("mentions", ())
    ):
        return None
    return post
