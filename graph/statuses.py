"""Posts (Mastodon statuses) in the graph: ``(:Status)`` nodes keyed by snowflake id.

A status carries its author's id (indexed) rather than an edge, so that an
author's posts page by id with one index range. ``delivered`` turns true once
fan-out has been acknowledged; the sweeper re-emits posts that stay false.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from neo4j import AsyncManagedTransaction

from graph.driver import GraphClient, Row

STATUS_FIELDS = "s {.*} AS status"
MAX_ID = 2**63 - 1


class ParentNotFound(Exception):
    """The post being replied to does not exist."""


class AuthorNotFound(Exception):
    """The author account does not exist."""


class StatusGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def create(
        self,
        status: dict[str, Any],
        before_commit: Callable[[AsyncManagedTransaction], Awaitable[None]] | None = None,
    ) -> Row:
        """Create the status, bump the author's counters (and the parent's replies) in one transaction.

        ``before_commit`` runs inside the same transaction (attaching media, say);
        if it raises, nothing is written.
        """

        async def work(tx: AsyncManagedTransaction) -> Row:
            if status.get("in_reply_to_id") is not None:
                parent = await (
                    await tx.run(
                        "MATCH (p:Status {id: $pid}) SET p.replies_count = p.replies_count + 1 "
                        "RETURN p.account_id AS account_id",
                        pid=status["in_reply_to_id"],
                    )
                ).data()
                if not parent:
                    raise ParentNotFound
                status["in_reply_to_account_id"] = parent[0]["account_id"]
            rows = await (
                await tx.run(
                    f"""
                    MATCH (a:Account {{id: $status.account_id}})
                    CREATE (s:Status)
                    SET s = $status
                    SET a.statuses_count = a.statuses_count + 1, a.last_status_at = $status.created_at
                    RETURN {STATUS_FIELDS}
                    """,
                    status=status,
                )
            ).data()
            if not rows:
                raise AuthorNotFound
            if before_commit is not None:
                await before_commit(tx)
            return rows[0]["status"]

        return await self.graph.write_transaction(work)

    async def get_many(self, ids: list[int]) -> dict[int, Row]:
        if not ids:
            return {}
        rows = await self.graph.read(f"MATCH (s:Status) WHERE s.id IN $ids RETURN {STATUS_FIELDS}", ids=list(set(ids)))
        return {r["status"]["id"]: r["status"] for r in rows}

    async def get(self, status_id: int) -> Row | None:
        return (await self.get_many([status_id])).get(status_id)

    async def delete(self, status_id: int) -> Row | None:
        """Delete the status and fix the counters it contributed to; returns the deleted record."""

        async def work(tx: AsyncManagedTransaction) -> Row | None:
            rows = await (await tx.run(f"MATCH (s:Status {{id: $id}}) RETURN {STATUS_FIELDS}", id=status_id)).data()
            if not rows:
                return None
            status = rows[0]["status"]
            await tx.run(
                "MATCH (a:Account {id: $aid}) SET a.statuses_count = a.statuses_count - 1",
                aid=status["account_id"],
            )
            if status.get("in_reply_to_id") is not None:
                await tx.run(
                    "MATCH (p:Status {id: $pid}) SET p.replies_count = p.replies_count - 1",
                    pid=status["in_reply_to_id"],
                )
            await tx.run("MATCH (s:Status {id: $id}) DETACH DELETE s", id=status_id)
            return status

        return await self.graph.write_transaction(work)

    async def by_author(
        self,
        account_id: int,
        max_id: int | None,
        since_id: int | None,
        min_id: int | None,
        limit: int,
        exclude_replies: bool = False,
    ) -> list[Row]:
        """One page of an author's posts, newest first (``min_id`` pages forward from a cursor)."""
        replies = "AND s.in_reply_to_id IS NULL" if exclude_replies else ""
        order = "ASC" if min_id is not None else "DESC"
        rows = await self.graph.read(
            f"""
            MATCH (s:Status) WHERE s.account_id = $aid AND s.id < $max AND s.id > $since {replies}
            RETURN {STATUS_FIELDS} ORDER BY s.id {order} LIMIT $limit
            """,
            aid=account_id,
            max=max_id if max_id is not None else MAX_ID,
            since=min_id if min_id is not None else (since_id or 0),
            limit=limit,
        )
        statuses = [r["status"] for r in rows]
        return sorted(statuses, key=lambda s: s["id"], reverse=True)

    async def recent_ids(self, author_ids: list[int], newer_than: int, limit: int) -> list[int]:
        """The newest ``limit`` post ids of ``author_ids`` newer than the id ``newer_than`` (rebuilds)."""
        if not author_ids:
            return []
        rows = await self.graph.read(
            "MATCH (s:Status) WHERE s.account_id IN $ids AND s.id > $after "
            "RETURN s.id AS id ORDER BY s.id DESC LIMIT $limit",
            ids=author_ids,
            after=newer_than,
            limit=limit,
        )
        return [r["id"] for r in rows]

    async def mark_delivered(self, status_id: int) -> None:
        await self.graph.write("MATCH (s:Status {id: $id}) SET s.delivered = true", id=status_id)

    async def undelivered(self, older_than: int, newer_than: int, limit: int) -> list[Row]:
        """Posts in the id window whose fan-out was never acknowledged."""
        rows = await self.graph.read(
            "MATCH (s:Status) WHERE s.delivered = false AND s.id < $before AND s.id > $after "
            "RETURN s.id AS id, s.account_id AS account_id LIMIT $limit",
            before=older_than,
            after=newer_than,
            limit=limit,
        )
        return rows
