"""Delivering a published story: what ``publish`` does after the graph write, and what is redone if it was cut short.

The story is in the graph first (``graph.stories``, ``delivered: false``).
Then its record goes into Redis (``redis_store.stories``), its
``story.created`` event onto the stream (the fan-out puts it in followers'
trays, ``services.feed``), and only then is it marked delivered. A process
that dies in between leaves it undelivered; the expiry actor
(``actors.story_expiry``) runs this again for such stories, as the fan-out
sweeper does for posts. Every step is idempotent. A module of its own so the
actor process imports only the stores.
"""

from __future__ import annotations

from typing import Any

from graph.stories import StoryGraph
from redis_store.events import EventStream
from redis_store.stories import StoryStore


async def deliver_story(
    story: dict[str, Any], now_ms: int, store: StoryStore, events: EventStream, graph: StoryGraph
) -> None:
    await store.publish(story, now_ms)
    await events.publish(
        "story.created", story_id=story["id"], account_id=story["account_id"], expires_at=story["expires_at"]
    )
    await graph.mark_delivered(story["id"])
