"""Posts (Mastodon statuses) in the graph: ``(:Status)`` nodes keyed by snowflake id.

A status carries its author's id (indexed) rather than an edge, so that an
author's posts page by id with one index range. A direct message
(``visibility: 'direct'``) carries the ids of its audience in ``mentions``;
the queries that feed timelines and profiles leave direct messages out. Its
hashtags are both ``(:Status)-[:TAGGED]->(:Tag)`` edges (``graph.tags``),
written in the same transaction, and a ``tags`` list of normalized names on
the status, so that a post's record (cached as it is) renders its tags
without another query. ``delivered`` turns true once fan-out has been
acknowledged; the sweeper re-emits posts that stay false.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from neo4j import AsyncManagedTransaction

from graph.driver import GraphClient, Row
from graph.tags import link_tags

STATUS_FIELDS = "s {.*} AS status"
MAX_ID = 2**63 - 1


def new_status(status_id: int, account_id: int, created_at: int, **fields: Any) -> dict[str, Any]:
    """A status record with every property the graph keeps; ``fields`` override the defaults."""
    return {
        "id": status_id,
        "account_id": account_id,
        "text": "",
        "spoiler_text": "",
        "sensitive": False,
        "visibility": "public",
        "language": None,
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "reblog_of_id": None,
        "media_ids": [],
        "tags": [],
        "created_at": created_at,
        "delivered": False,
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        **fields,
    }


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
        """Create the status, bump the author's counters (and the parent's replies), link its ``tags`` (which
        must exist: ``TagGraph.ensure``) in one transaction.

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
            if status.get("in_reply_to_id") is not None:
                await tx.run(
                    "MATCH (s:Status {id: $id}), (p:Status {id: $pid}) CREATE (s)-[:REPLY_TO]->(p)",
                    id=status["id"],
                    pid=status["in_reply_to_id"],
                )
            await link_tags(tx, status["id"], status.get("tags") or [])
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

    async def delete(self, status_id: int) -> tuple[Row, list[Row]] | None:
        """Delete the status, its reblogs, and fix the counters they contributed to.

        Returns the deleted record and the deleted reblogs (their timelines need cleaning too).
        """

        async def work(tx: AsyncManagedTransaction) -> tuple[Row, list[Row]] | None:
            rows = await (await tx.run(f"MATCH (s:Status {{id: $id}}) RETURN {STATUS_FIELDS}", id=status_id)).data()
            if not rows:
                return None
            status = rows[0]["status"]
            reblogs = await (
                await tx.run(f"MATCH (s:Status {{reblog_of_id: $id}}) RETURN {STATUS_FIELDS}", id=status_id)
            ).data()
            removed = [status, *(r["status"] for r in reblogs)]
            await tx.run(
                "UNWIND $aids AS aid MATCH (a:Account {id: aid}) SET a.statuses_count = a.statuses_count - 1",
                aids=[r["account_id"] for r in removed],
            )
            if status.get("in_reply_to_id") is not None:
                await tx.run(
                    "MATCH (p:Status {id: $pid}) SET p.replies_count = p.replies_count - 1",
                    pid=status["in_reply_to_id"],
                )
            if status.get("reblog_of_id") is not None:
                await tx.run(
                    "MATCH (p:Status {id: $pid}) SET p.reblogs_count = p.reblogs_count - 1",
                    pid=status["reblog_of_id"],
                )
            await tx.run(
                "UNWIND $ids AS sid MATCH (s:Status {id: sid}) DETACH DELETE s", ids=[r["id"] for r in removed]
            )
            return status, removed[1:]

        return await self.graph.write_transaction(work)

    async def create_reblog(self, reblog: dict[str, Any]) -> tuple[Row, bool]:
        """Reblog once: (the reblog, whether it was created now). Bumps the original's counter."""

        async def work(tx: AsyncManagedTransaction) -> tuple[Row, bool]:
            existing = await (
                await tx.run(
                    f"MATCH (s:Status {{reblog_of_id: $orig}}) WHERE s.account_id = $aid RETURN {STATUS_FIELDS}",
                    orig=reblog["reblog_of_id"],
                    aid=reblog["account_id"],
                )
            ).data()
            if existing:
                return existing[0]["status"], False
            bumped = await (
                await tx.run(
                    "MATCH (p:Status {id: $orig}) SET p.reblogs_count = p.reblogs_count + 1 RETURN p.id AS id",
                    orig=reblog["reblog_of_id"],
                )
            ).data()
            if not bumped:
                raise ParentNotFound
            rows = await (
                await tx.run(
                    f"""
                    MATCH (a:Account {{id: $status.account_id}})
                    CREATE (s:Status) SET s = $status
                    SET a.statuses_count = a.statuses_count + 1
                    RETURN {STATUS_FIELDS}
                    """,
                    status=reblog,
                )
            ).data()
            if not rows:
                raise AuthorNotFound
            return rows[0]["status"], True

        return await self.graph.write_transaction(work)

    async def find_reblog(self, account_id: int, original_id: int) -> Row | None:
        rows = await self.graph.read(
            f"MATCH (s:Status {{reblog_of_id: $orig}}) WHERE s.account_id = $aid RETURN {STATUS_FIELDS}",
            orig=original_id,
            aid=account_id,
        )
        return rows[0]["status"] if rows else None

    async def reblogs_by(self, account_id: int, limit: int) -> list[tuple[int, int]]:
        """(original id, reblog id) of an account's reblogs."""
        rows = await self.graph.read(
            "MATCH (s:Status) WHERE s.account_id = $id AND s.reblog_of_id IS NOT NULL "
            "RETURN s.reblog_of_id AS orig, s.id AS id ORDER BY s.id DESC LIMIT $limit",
            id=account_id,
            limit=limit,
        )
        return [(r["orig"], r["id"]) for r in rows]

    async def rebloggers(self, original_id: int, max_id: int | None, limit: int) -> list[tuple[int, int]]:
        """(reblog id, account id) pairs, newest first."""
        rows = await self.graph.read(
            "MATCH (s:Status {reblog_of_id: $orig}) WHERE s.id < $max "
            "RETURN s.id AS id, s.account_id AS aid ORDER BY s.id DESC LIMIT $limit",
            orig=original_id,
            max=max_id if max_id is not None else MAX_ID,
            limit=limit,
        )
        return [(r["id"], r["aid"]) for r in rows]

    async def ancestors(self, status_id: int, depth: int) -> list[int]:
        """Ids of the posts above this one in its thread, oldest first."""
        rows = await self.graph.read(
            f"MATCH (:Status {{id: $id}})-[:REPLY_TO*1..{int(depth)}]->(a:Status) RETURN a.id AS id ORDER BY id",
            id=status_id,
        )
        return [r["id"] for r in rows]

    async def descendants(self, status_id: int, after: int, limit: int, depth: int) -> list[int]:
        """A page of the replies below this post (any depth), in posting order after the id ``after``."""
        rows = await self.graph.read(
            f"MATCH (:Status {{id: $id}})<-[:REPLY_TO*1..{int(depth)}]-(d:Status) WHERE d.id > $after "
            "RETURN DISTINCT d.id AS id ORDER BY id LIMIT $limit",
            id=status_id,
            after=after,
            limit=limit,
        )
        return [r["id"] for r in rows]

    async def by_author(
        self,
        account_id: int,
        max_id: int | None,
        since_id: int | None,
        min_id: int | None,
        limit: int,
        exclude_replies: bool = False,
        include_private: bool = True,
        include_direct: bool = False,
    ) -> list[Row]:
        """One page of an author's posts, newest first (``min_id`` pages forward from a cursor).

        Filters run inside the query, before its ``LIMIT``, so a page is never short for a filtered viewer.
        """
        replies = "AND s.in_reply_to_id IS NULL" if exclude_replies else ""
        replies += "" if include_private else " AND s.visibility <> 'private'"
        replies += "" if include_direct else " AND s.visibility <> 'direct'"
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

    async def recent_entries(self, author_ids: list[int], newer_than: int, limit: int) -> list[tuple[int, int | None]]:
        """(id, reblogged id) of the newest ``limit`` posts of ``author_ids`` after the id ``newer_than``."""
        if not author_ids:
            return []
        rows = await self.graph.read(
            "MATCH (s:Status) WHERE s.account_id IN $ids AND s.id > $after AND s.visibility <> 'direct' "
            "RETURN s.id AS id, s.reblog_of_id AS reblog_of ORDER BY s.id DESC LIMIT $limit",
            ids=author_ids,
            after=newer_than,
            limit=limit,
        )
        return [(r["id"], r["reblog_of"]) for r in rows]

    async def window_of_authors(
        self, author_ids: list[int], after: int, before: int, limit: int, oldest_first: bool
    ) -> list[int]:
        """Ids of the posts of ``author_ids`` strictly between two ids, newest first: ``limit`` of them from
        the newest end, or from the oldest end with ``oldest_first`` (a home page pulled on read)."""
        if not author_ids:
            return []
        order = "ASC" if oldest_first else "DESC"
        rows = await self.graph.read(
            "MATCH (s:Status) WHERE s.account_id IN $ids AND s.id > $after AND s.id < $before "
            "AND s.visibility <> 'direct' "
            f"RETURN s.id AS id ORDER BY s.id {order} LIMIT $limit",
            ids=author_ids,
            after=after,
            before=before,
            limit=limit,
        )
        return sorted((r["id"] for r in rows), reverse=True)

    async def mark_delivered(self, status_id: int) -> None:
        await self.graph.write("MATCH (s:Status {id: $id}) SET s.delivered = true", id=status_id)

    async def undelivered(self, older_than: int, newer_than: int, limit: int) -> list[Row]:
        """Posts in the id window whose fan-out was never acknowledged, with what their event carries."""
        rows = await self.graph.read(
            "MATCH (s:Status) WHERE s.delivered = false AND s.id < $before AND s.id > $after "
            "RETURN s.id AS id, s.account_id AS account_id, s.in_reply_to_account_id AS in_reply_to_account_id, "
            "s.visibility AS visibility, s.mentions AS mentions LIMIT $limit",
            before=older_than,
            after=newer_than,
            limit=limit,
        )
        return rows
