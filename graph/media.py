"""Media records (``:Media`` nodes) in the graph: the system of record for uploads.

A record is created in state ``processing`` before the upload is
acknowledged, and flipped to ``ready`` (with its variants and metadata) or
``failed`` (with a reason) by the remote task, only after every variant is in
the object store. ``attempt_at`` is when processing last started; a record
still processing long after it is re-launched, and the compare-and-set in
``claim_relaunch`` makes sure only one replica does so. Structured fields
(variants, meta) are stored as JSON strings: nested maps are not portable
graph properties.
"""

from __future__ import annotations

from typing import Any

from neo4j import AsyncManagedTransaction

from graph.driver import GraphClient, Row


class MediaGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def create(self, record: Row) -> None:
        await self.graph.write("CREATE (m:Media) SET m = $record", record=record)

    async def get(self, media_id: int) -> Row | None:
        rows = await self.graph.read("MATCH (m:Media {id: $id}) RETURN m {.*} AS media", id=media_id)
        return rows[0]["media"] if rows else None

    async def get_many(self, media_ids: list[int]) -> dict[int, Row]:
        """Records by id in one query; missing ids are absent."""
        if not media_ids:
            return {}
        rows = await self.graph.read(
            "MATCH (m:Media) WHERE m.id IN $ids RETURN m {.*} AS media", ids=list(set(media_ids))
        )
        return {row["media"]["id"]: row["media"] for row in rows}

    async def attachment_rows(self, media_ids: list[int]) -> dict[int, Row]:
        """What an attachment shows of each record (``services.media.unsigned_attachment``), by id, in one query;
        missing ids are absent. Hashes, sizes and timestamps stay behind: nothing reads them there."""
        if not media_ids:
            return {}
        rows = await self.graph.read(
            """
            MATCH (m:Media) WHERE m.id IN $ids
            RETURN m {.id, .kind, .state, .variants, .meta, .blurhash, .description, .focus_x, .focus_y} AS media
            """,
            ids=list(set(media_ids)),
        )
        return {row["media"]["id"]: row["media"] for row in rows}

    async def serving(self, media_id: int) -> Row | None:
        """What serving the record's bytes depends on: its variants, its status id and, when that status
        still exists, its visibility (null for a deleted status)."""
        rows = await self.graph.read(
            """
            MATCH (m:Media {id: $id}) OPTIONAL MATCH (s:Status {id: m.status_id})
            RETURN m.variants AS variants, m.status_id AS status_id, s.visibility AS visibility
            """,
            id=media_id,
        )
        return rows[0] if rows else None

    async def find_ready_by_sha256(self, sha256: str) -> Row | None:
        """Any ready record of the same original bytes, whose variants a new upload can share."""
        rows = await self.graph.read(
            "MATCH (m:Media {sha256: $sha}) WHERE m.state = 'ready' RETURN m {.*} AS media LIMIT 1", sha=sha256
        )
        return rows[0]["media"] if rows else None

    async def update_unattached(self, media_id: int, account_id: int, changes: dict[str, Any]) -> Row | None:
        """Apply ``changes`` if the record belongs to ``account_id`` and no status uses it yet."""
        rows = await self.graph.write(
            """
            MATCH (m:Media {id: $id}) WHERE m.account_id = $account_id AND m.status_id IS NULL
            SET m += $changes RETURN m {.*} AS media
            """,
            id=media_id,
            account_id=account_id,
            changes=changes,
        )
        return rows[0]["media"] if rows else None

    async def mark_started(self, media_id: int, now_ms: int) -> Row | None:
        """Record that a task began (the staleness clock restarts); None unless the record is processing."""
        rows = await self.graph.write(
            "MATCH (m:Media {id: $id}) WHERE m.state = 'processing' SET m.attempt_at = $now RETURN m {.*} AS media",
            id=media_id,
            now=now_ms,
        )
        return rows[0]["media"] if rows else None

    async def mark_ready(self, media_id: int, fields: Row) -> bool:
        """Flip to ready with ``fields`` (variants, meta, …); a record no longer processing is left alone."""
        rows = await self.graph.write(
            """
            MATCH (m:Media {id: $id}) WHERE m.state = 'processing'
            SET m += $fields, m.state = 'ready' RETURN m.id AS id
            """,
            id=media_id,
            fields=fields,
        )
        return bool(rows)

    async def mark_failed(self, media_id: int, reason: str, now_ms: int) -> bool:
        rows = await self.graph.write(
            """
            MATCH (m:Media {id: $id}) WHERE m.state = 'processing'
            SET m.state = 'failed', m.failure = $reason, m.processed_at = $now RETURN m.id AS id
            """,
            id=media_id,
            reason=reason,
            now=now_ms,
        )
        return bool(rows)

    async def stale(self, cutoff_ms: int, limit: int = 100) -> list[Row]:
        """Records still processing whose last attempt started before ``cutoff_ms``."""
        return await self.graph.read(
            """
            MATCH (m:Media {state: 'processing'}) WHERE m.attempt_at < $cutoff
            RETURN m.id AS id, m.attempt_at AS attempt_at LIMIT $limit
            """,
            cutoff=cutoff_ms,
            limit=limit,
        )

    async def claim_relaunch(self, media_id: int, seen_attempt_at: int, now_ms: int) -> bool:
        """Compare-and-set ``attempt_at``: True for exactly one of several replicas that saw the same stale record."""
        rows = await self.graph.write(
            """
            MATCH (m:Media {id: $id}) WHERE m.state = 'processing' AND m.attempt_at = $seen
            SET m.attempt_at = $now RETURN m.id AS id
            """,
            id=media_id,
            seen=seen_attempt_at,
            now=now_ms,
        )
        return bool(rows)

    async def retirable(self, media_ids: list[int]) -> list[Row]:
        """The uploads among ``media_ids`` not deleted yet, each with whether another live upload shares its bytes
        (uploads of the same bytes share their files): what deleting them means for the object store."""
        if not media_ids:
            return []
        return await self.graph.read(
            """
            MATCH (m:Media) WHERE m.id IN $ids AND m.state <> 'deleted'
            OPTIONAL MATCH (o:Media {sha256: m.sha256}) WHERE o.id <> m.id AND o.state <> 'deleted'
            WITH m, count(o) AS others
            RETURN m.id AS id, m.sha256 AS sha256, m.variants AS variants, others > 0 AS shared
            """,
            ids=media_ids,
        )

    async def mark_deleted(self, media_ids: list[int]) -> None:
        """Uploads whose files are gone (an expired story's): their URLs answer 404 from now on."""
        if media_ids:
            await self.graph.write("MATCH (m:Media) WHERE m.id IN $ids SET m.state = 'deleted'", ids=media_ids)


async def attachable_tx(tx: AsyncManagedTransaction, media_ids: list[int]) -> dict[int, Row]:
    """Owner, status, state and purpose of ``media_ids``, read inside the caller's transaction."""
    result = await tx.run(
        """
        MATCH (m:Media) WHERE m.id IN $ids
        RETURN m.id AS id, m.account_id AS account_id, m.status_id AS status_id, m.state AS state,
               m.purpose AS purpose
        """,
        ids=media_ids,
    )
    return {row["id"]: row for row in await result.data()}


async def attach_tx(tx: AsyncManagedTransaction, account_id: int, status_id: int, media_ids: list[int]) -> int:
    """Point ``media_ids`` (in this order) at ``status_id``; returns how many records were still free to take."""
    result = await tx.run(
        """
        UNWIND $items AS item
        MATCH (m:Media {id: item.id}) WHERE m.account_id = $account_id AND m.status_id IS NULL
        SET m.status_id = $status_id, m.position = item.position
        RETURN count(m) AS n
        """,
        items=[{"id": media_id, "position": i} for i, media_id in enumerate(media_ids)],
        account_id=account_id,
        status_id=status_id,
    )
    record = await result.single()
    return int(record["n"]) if record else 0


STORY_PURPOSE = "story"  # ``purpose`` of an upload made through the stories API: it gets a 9:16 variant


async def claim_for_story_tx(tx: AsyncManagedTransaction, account_id: int, media_id: int, story_id: int) -> Row | str:
    """Point a ready story upload of ``account_id`` at ``story_id``, inside the caller's transaction; returns the
    record, or why it cannot be published (a message for the client)."""
    result = await tx.run("MATCH (m:Media {id: $id}) RETURN m {.*} AS media", id=media_id)
    rows = await result.data()
    media = rows[0]["media"] if rows else None
    if media is None or media["account_id"] != account_id:
        return f"Validation failed: media {media_id} not found"
    if media.get("purpose") != STORY_PURPOSE:
        return f"Validation failed: media {media_id} was not uploaded as a story (POST /api/v1.1/stories/add)"
    if media.get("story_id") is not None:
        return f"Validation failed: media {media_id} is already published"
    if media["state"] == "processing":
        return "Cannot publish a story that has not finished processing. Try again in a moment!"
    if media["state"] != "ready":
        return f"Validation failed: media {media_id} could not be processed"
    claimed = await tx.run(
        "MATCH (m:Media {id: $id}) WHERE m.story_id IS NULL SET m.story_id = $story RETURN count(m) AS n",
        id=media_id,
        story=story_id,
    )
    record = await claimed.single()
    if not record or not record["n"]:
        return f"Validation failed: media {media_id} is already published"
    return media
