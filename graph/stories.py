"""Stories in the graph: ``(:Story)`` nodes, the system of record of what was published and until when.

A story's id is the id of the upload it shows (Pixelfed's clients publish
the ``media_id`` that ``add`` answered and then address the story by it).
It carries its author's id (indexed), its ``expires_at`` deadline (Unix ms,
fixed at publishing) and ``expired``, which the expiry actor turns true once
the deadline has passed and the clean-up is done (``actors.story_expiry``).
Reads never rely on ``expired``: they compare ``expires_at`` with the clock.
Ending a story early (``self-expire``) moves its deadline to that moment.
``delivered`` turns true once the story is in Redis and its fan-out event is
on the stream; the expiry actor re-emits stories that stay false (the API
died between the graph write and the rest), as the fan-out sweeper does for
posts. A story keeps the object keys it shows (``src``, ``preview``), so
that re-emitting needs nothing but its record.
"""

from __future__ import annotations

from typing import Any

import orjson
from neo4j import AsyncManagedTransaction

from graph.driver import GraphClient, Row
from graph.media import claim_for_story_tx

STORY_FIELDS = (
    ".id, .account_id, .media_id, .kind, .src, .preview, .created_at, .expires_at, .duration, .can_reply, "
    ".can_react, .expired, .delivered"
)


class TooManyStories(Exception):
    """The author has the maximum number of active stories already."""


class MediaNotPublishable(Exception):
    """The upload cannot become a story; ``str(exc)`` says why, for the client."""


def story_keys(media: Row) -> dict[str, Any]:
    """What a story shows of its upload: ``kind``, ``src`` (the 9:16 frame of a photo, or the web MP4 of a
    video) and ``preview`` (the frame, or the video's poster in a 9:16 frame), as object keys."""
    variants = orjson.loads(media.get("variants") or "[]")
    frame = next((v["key"] for v in variants if v["role"] == "story"), None)
    video = next((v["key"] for v in variants if v["role"] == "video"), None)
    return {"kind": "video" if video else "photo", "src": video or frame, "preview": frame}


class StoryGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def publish(self, story: dict[str, Any], now_ms: int, max_active: int) -> Row:
        """Create the story (not delivered yet) and claim its upload in one transaction; refuse the one past
        ``max_active``. Returns the record as stored.

        The caller holds the author's story lock (``services.stories``): the count and the create are
        one check-then-write that the graph does not serialize by itself.
        """

        async def work(tx: AsyncManagedTransaction) -> Row:
            counted = await (
                await tx.run(
                    "MATCH (s:Story {account_id: $a}) WHERE s.expired = false AND s.expires_at > $now "
                    "RETURN count(s) AS n",
                    a=story["account_id"],
                    now=now_ms,
                )
            ).single()
            if counted is not None and counted["n"] >= max_active:
                raise TooManyStories
            media = await claim_for_story_tx(tx, story["account_id"], story["media_id"], story["id"])
            if isinstance(media, str):
                raise MediaNotPublishable(media)
            record = {**story, **story_keys(media), "expired": False, "delivered": False}
            await tx.run("CREATE (s:Story) SET s = $record", record=record)
            return record

        return await self.graph.write_transaction(work)

    async def end_now(self, story_id: int, account_id: int, now_ms: int) -> Row | None:
        """Self-expire: the author's active story gets ``now`` as its deadline; None if there is none."""
        rows = await self.graph.write(
            f"""
            MATCH (s:Story {{id: $id}})
            WHERE s.account_id = $a AND s.expired = false AND s.expires_at > $now
            SET s.expires_at = $now RETURN s {{{STORY_FIELDS}}} AS story
            """,
            id=story_id,
            a=account_id,
            now=now_ms,
        )
        return rows[0]["story"] if rows else None

    async def due(self, now_ms: int, limit: int) -> list[Row]:
        """Stories past their deadline whose clean-up has not run yet."""
        rows = await self.graph.read(
            f"""
            MATCH (s:Story) WHERE s.expired = false AND s.expires_at <= $now
            RETURN s {{{STORY_FIELDS}}} AS story ORDER BY s.expires_at LIMIT $limit
            """,
            now=now_ms,
            limit=limit,
        )
        return [r["story"] for r in rows]

    async def mark_delivered(self, story_id: int) -> None:
        await self.graph.write("MATCH (s:Story {id: $id}) SET s.delivered = true", id=story_id)

    async def undelivered(self, older_than_ms: int, now_ms: int, limit: int) -> list[Row]:
        """Active stories published before ``older_than_ms`` whose delivery was never finished."""
        rows = await self.graph.read(
            f"""
            MATCH (s:Story) WHERE s.delivered = false AND s.created_at < $before AND s.expires_at > $now
            RETURN s {{{STORY_FIELDS}}} AS story LIMIT $limit
            """,
            before=older_than_ms,
            now=now_ms,
            limit=limit,
        )
        return [r["story"] for r in rows]

    async def mark_expired(self, story_ids: list[int]) -> None:
        if story_ids:
            await self.graph.write("MATCH (s:Story) WHERE s.id IN $ids SET s.expired = true", ids=story_ids)
