"""Bookmarks in the graph: ``(:Account)-[:BOOKMARKED {id, created_at}]->(:Status)``, the system of record.

A user's list pages by the edge's snowflake id (the most recent bookmark
first). Hydration does not read these edges per page: ``redis_store.bookmarks``
caches each user's bookmarked post ids, loaded from here (``newest``).
"""

from __future__ import annotations

from neo4j import AsyncManagedTransaction

from graph.driver import GraphClient

MAX_ID = 2**63 - 1


class BookmarkGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def add(self, account_id: int, status_id: int, edge_id: int, now_ms: int) -> bool:
        """Bookmark once (True if created now); False also when the post is gone."""

        async def work(tx: AsyncManagedTransaction) -> bool:
            existing = await (
                await tx.run(
                    "MATCH (:Account {id: $a})-[b:BOOKMARKED]->(:Status {id: $s}) RETURN b.id AS id",
                    a=account_id,
                    s=status_id,
                )
            ).data()
            if existing:
                return False
            created = await (
                await tx.run(
                    "MATCH (a:Account {id: $a}), (s:Status {id: $s}) "
                    "CREATE (a)-[b:BOOKMARKED {id: $edge, created_at: $now}]->(s) RETURN b.id AS id",
                    a=account_id,
                    s=status_id,
                    edge=edge_id,
                    now=now_ms,
                )
            ).data()
            return bool(created)

        return await self.graph.write_transaction(work)

    async def remove(self, account_id: int, status_id: int) -> bool:
        rows = await self.graph.write(
            "MATCH (:Account {id: $a})-[b:BOOKMARKED]->(:Status {id: $s}) DELETE b RETURN count(*) AS n",
            a=account_id,
            s=status_id,
        )
        return bool(rows and rows[0]["n"])

    async def page(
        self, account_id: int, max_id: int | None, since_id: int | None, limit: int
    ) -> list[tuple[int, int]]:
        """(bookmark id, status id) pairs, the most recent bookmark first."""
        rows = await self.graph.read(
            "MATCH (:Account {id: $a})-[b:BOOKMARKED]->(s:Status) WHERE b.id < $max AND b.id > $since "
            "RETURN b.id AS cursor, s.id AS id ORDER BY b.id DESC LIMIT $limit",
            a=account_id,
            max=max_id if max_id is not None else MAX_ID,
            since=since_id if since_id is not None else 0,
            limit=limit,
        )
        return [(r["cursor"], r["id"]) for r in rows]

    async def newest(self, account_id: int, limit: int) -> list[int]:
        """Ids of the posts of the user's ``limit`` most recent bookmarks."""
        rows = await self.graph.read(
            "MATCH (:Account {id: $a})-[b:BOOKMARKED]->(s:Status) RETURN s.id AS id ORDER BY b.id DESC LIMIT $limit",
            a=account_id,
            limit=limit,
        )
        return [r["id"] for r in rows]

    async def among(self, account_id: int, status_ids: list[int]) -> set[int]:
        """Which of ``status_ids`` the user bookmarked: for a user with more bookmarks than the cache holds."""
        if not status_ids:
            return set()
        rows = await self.graph.read(
            "MATCH (:Account {id: $a})-[:BOOKMARKED]->(s:Status) WHERE s.id IN $ids RETURN s.id AS id",
            a=account_id,
            ids=status_ids,
        )
        return {r["id"] for r in rows}
