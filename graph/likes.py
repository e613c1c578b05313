"""Likes in the graph: ``(:Account)-[:LIKED {id, created_at}]->(:Status)``.

Written in batches by the like persister from the event stream. Each row
creates or deletes its edge only if needed and moves the post's stored
``favourites_count`` by one, so replays are harmless and the count equals
the number of edges without counting them.
"""

from __future__ import annotations

from neo4j import AsyncManagedTransaction

from graph.accounts import ACCOUNT_FIELDS
from graph.driver import GraphClient, Row


class LikeGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def apply(self, created: list[Row], deleted: list[Row]) -> None:
        """Persist one batch: ``created`` rows {account_id, status_id, like_id, created_at}, ``deleted`` rows."""

        async def work(tx: AsyncManagedTransaction) -> None:
            if created:
                await tx.run(
                    """
                    UNWIND $rows AS r
                    MATCH (a:Account {id: r.account_id}), (s:Status {id: r.status_id})
                    OPTIONAL MATCH (a)-[old:LIKED]->(s)
                    WITH a, s, r, old WHERE old IS NULL
                    CREATE (a)-[:LIKED {id: r.like_id, created_at: r.created_at}]->(s)
                    SET s.favourites_count = s.favourites_count + 1
                    """,
                    rows=created,
                )
            if deleted:
                await tx.run(
                    """
                    UNWIND $rows AS r
                    MATCH (:Account {id: r.account_id})-[l:LIKED]->(s:Status {id: r.status_id})
                    DELETE l
                    SET s.favourites_count = s.favourites_count - 1
                    """,
                    rows=deleted,
                )

        await self.graph.write_transaction(work)

    async def likes_of_user(
        self, account_id: int, limit: int, before: int | None = None, after: int | None = None
    ) -> list[tuple[int, int]]:
        """(status id, like id) of the user's most recent likes, with like ids between ``after`` and ``before``."""
        rows = await self.graph.read(
            "MATCH (:Account {id: $id})-[l:LIKED]->(s:Status) WHERE l.id < $before AND l.id > $after "
            "RETURN s.id AS sid, l.id AS lid ORDER BY l.id DESC LIMIT $limit",
            id=account_id,
            limit=limit,
            before=before if before is not None else 2**63 - 1,
            after=after if after is not None else 0,
        )
        return [(r["sid"], r["lid"]) for r in rows]

    async def viewer_state(self, viewer_id: int, status_ids: list[int]) -> tuple[set[int], set[int]]:
        """(posts liked, posts reblogged) by the viewer among ``status_ids``: what Redis answers normally,
        asked of the graph while Redis is down."""
        if not status_ids:
            return set(), set()
        liked = await self.graph.read(
            "MATCH (:Account {id: $viewer})-[:LIKED]->(s:Status) WHERE s.id IN $ids RETURN s.id AS id",
            viewer=viewer_id,
            ids=status_ids,
        )
        reblogged = await self.graph.read(
            "MATCH (r:Status) WHERE r.account_id = $viewer AND r.reblog_of_id IN $ids RETURN r.reblog_of_id AS id",
            viewer=viewer_id,
            ids=status_ids,
        )
        return {r["id"] for r in liked}, {r["id"] for r in reblogged}

    async def like_of(self, account_id: int, status_id: int) -> int | None:
        """The id of the account's like of the post, if the graph has one."""
        rows = await self.graph.read(
            "MATCH (:Account {id: $aid})-[l:LIKED]->(:Status {id: $sid}) RETURN l.id AS id",
            aid=account_id,
            sid=status_id,
        )
        return rows[0]["id"] if rows else None

    async def likers(self, status_id: int, max_id: int | None, limit: int) -> list[tuple[int, Row]]:
        """(like id, account) pairs, most recent like first."""
        rows = await self.graph.read(
            f"""
            MATCH (:Status {{id: $id}})<-[l:LIKED]-(a:Account) WHERE l.id < $max
            RETURN l.id AS cursor, a {{ {ACCOUNT_FIELDS} }} AS account ORDER BY l.id DESC LIMIT $limit
            """,
            id=status_id,
            max=max_id if max_id is not None else 2**63 - 1,
            limit=limit,
        )
        return [(r["cursor"], r["account"]) for r in rows]
