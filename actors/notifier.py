"""``Notifier``: turns interaction events into notifications (consumer group ``notify``).

The rules, in one place:
  * ``follow``        → "follow" for the followed account
  * ``follow_request`` → "follow_request" for the locked account asked
  * ``like.created``  → "favourite" for the post's author
  * ``status.created`` of a reply → "mention" for the author replied to
  * ``status.created`` mentioning accounts → "mention" for each of them
  * ``status.created`` of a direct message → its conversation moves up (or
    starts) for the author and each recipient, unread for the recipients,
    pushed to each as a ``conversation`` event (``redis_store.conversations``)
  * ``status.created`` of a reblog → "reblog" for the original's author
  * nobody is notified of their own actions;
  * the same actor doing the same thing to the same post notifies once
    (like, unlike, like again: one notification);
  * likes and reblogs of one post share a ``group_key`` (grouped notifications, v2).

Durability: the events notifications are made from are on disk before their
writer answered (``EventStream.publish`` and the like call wait for the
append-only file). A notification is written before its event is acked, and
Redis' append-only file keeps writes in order, so a crash that loses a
notification loses that ack (and the duplicate guard) with it: the event is
delivered again and the notification made again. No wait is needed here.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

import metrics
from actors.consumer import consume_forever
from config import get_settings
from redis_store.client import claim_id_generator, redis_from
from redis_store.conversations import ConversationStore
from redis_store.events import Event, EventStream
from redis_store.notifications import NotificationStore
from redis_store.worker_lease import LeasedGenerator

GROUP = "notify"


def notifications_for(event: Event) -> list[tuple[str, int, int, int | None]]:
    """(type, recipient, actor, status id) of each notification an event makes (none for most)."""
    data = event.data
    if event.type in ("follow", "follow_request"):
        return [(event.type, data["target_id"], data["account_id"], None)]
    if event.type == "like.created":
        return [("favourite", data["status_account_id"], data["account_id"], data["status_id"])]
    if event.type == "status.created":
        if data.get("reblog_of_id") is not None:
            return [("reblog", data["reblog_of_account_id"], data["account_id"], data["reblog_of_id"])]
        recipients = [data["in_reply_to_account_id"]] if data.get("in_reply_to_account_id") is not None else []
        recipients += [m for m in data.get("mentions") or () if m not in recipients]
        return [("mention", r, data["account_id"], data["status_id"]) for r in recipients]
    return []


def group_key(kind: str, status_id: int | None, notification_id: int) -> str:
    if kind in ("favourite", "reblog") and status_id is not None:
        return f"{kind}-{status_id}"
    return f"ungrouped-{notification_id}"


class Notifier:
    """The ``notify`` group's consumer; ``StreamConsumers`` (``actors.stream``) runs it."""

    def __init__(self, redis: Redis, ids: LeasedGenerator, name: str) -> None:
        settings = get_settings()
        self.name = name
        self.ids = ids
        self.store = NotificationStore(redis, settings.notifications_max)
        self.conversations = ConversationStore(redis)
        self.events = EventStream(redis, maxlen=settings.event_stream_max)
        self.claim_idle_ms = settings.fanout_claim_idle_ms

    @classmethod
    async def create(cls, name: str) -> Notifier:
        """A notifier holding a snowflake worker-id lease (it mints the notifications' ids)."""
        redis = redis_from(get_settings())
        return cls(redis, await claim_id_generator(redis), name)

    async def run(self) -> None:
        """Consume the ``notify`` group until cancelled."""
        await consume_forever(
            self.events, GROUP, self.name, self.handle_batch, claim_idle_ms=self.claim_idle_ms, batch_size=100
        )

    async def handle_batch(self, batch: list[Event]) -> None:
        for event in batch:
            if event.type == "status.created" and event.data.get("visibility") == "direct":
                await self.converse(event.data["status_id"], event.data["account_id"], event.data.get("mentions") or [])
            for found in notifications_for(event):
                await self.notify(event, *found)

    async def converse(self, status_id: int, author: int, mentions: list[int]) -> None:
        """A direct message joins its conversation for each participant (read for its author)."""
        participants = [author, *mentions]
        for user in dict.fromkeys(participants):
            await self.conversations.add(user, participants, self.ids.next_id(), status_id, unread=user != author)

    async def notify(self, event: Event, kind: str, recipient: int, actor: int, status_id: int | None) -> None:
        if recipient == actor:
            return  # nobody is notified of their own actions
        notification_id = self.ids.next_id()
        record = {
            "id": notification_id,
            "type": kind,
            "recipient_id": recipient,
            "account_id": actor,
            "status_id": status_id,
            "created_at": int(time.time() * 1000),
            "group_key": group_key(kind, status_id, notification_id),
        }
        if await self.store.add(record):
            metrics.inc(metrics.NOTIFICATIONS, type=kind)
            event_ms = int(event.id.split("-")[0])
            metrics.observe(metrics.NOTIFICATION_LAG, time.time() * 1000 - event_ms)
