"""Blocks, mutes and follow requests in the graph, the system of record for each.

  ``(:Account)-[:BLOCKS {id, created_at}]->(:Account)``
  ``(:Account)-[:MUTES {id, created_at, notifications, expires_at}]->(:Account)``  (``expires_at``: unix ms, or 0
      for a mute without end; an expired edge counts as no mute and goes at the next change of the pair)
  ``(:Account)-[:REQUESTED {id, created_at}]->(:Account)``  (a pending follow of a locked account)

Lists page by the edge's snowflake id, newest first, as follower lists do. The
read path does not query these edges per page: ``redis_store.relations``
caches each viewer's relations, loaded from here once (``relations_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neo4j import AsyncManagedTransaction

from graph.accounts import ACCOUNT_FIELDS
from graph.driver import GraphClient, Row

MAX_ID = 2**63 - 1
EdgeType = Literal["BLOCKS", "MUTES", "REQUESTED"]
EDGE_TYPES: tuple[EdgeType, ...] = ("BLOCKS", "MUTES", "REQUESTED")


@dataclass(frozen=True)
class Relations:
    """One viewer's safety relations, as loaded into the cache: account id -> facts."""

    blocking: set[int]
    blocked_by: set[int]
    muting: dict[int, tuple[bool, int]]  # account -> (mutes notifications too, expires_at ms or 0)
    complete: bool  # False when the viewer has more relations than were loaded


async def _create_once(
    tx: AsyncManagedTransaction, edge_type: EdgeType, a: int, b: int, edge_id: int, now_ms: int
) -> bool:
    """Inside ``tx``: create ``a``'s edge of ``edge_type`` to ``b`` unless there is one; True if created now."""
    existing = await (
        await tx.run(f"MATCH (:Account {{id: $a}})-[r:{edge_type}]->(:Account {{id: $b}}) RETURN r.id AS id", a=a, b=b)
    ).data()
    if existing:
        return False
    await tx.run(
        f"MATCH (a:Account {{id: $a}}), (b:Account {{id: $b}}) "
        f"CREATE (a)-[:{edge_type} {{id: $edge, created_at: $now}}]->(b)",
        a=a,
        b=b,
        edge=edge_id,
        now=now_ms,
    )
    return True


class RelationGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    # -- blocks ---------------------------------------------------------------------

    async def block(self, me: int, target: int, edge_id: int, now_ms: int) -> bool:
        """Create the block once (True if created now), dropping follow requests between the two."""

        async def work(tx: AsyncManagedTransaction) -> bool:
            await tx.run("MATCH (a:Account {id: $a})-[r:REQUESTED]-(b:Account {id: $b}) DELETE r", a=me, b=target)
            return await _create_once(tx, "BLOCKS", me, target, edge_id, now_ms)

        return await self.graph.write_transaction(work)

    async def unblock(self, me: int, target: int) -> bool:
        return await self._delete("BLOCKS", me, target)

    # -- mutes ----------------------------------------------------------------------

    async def mute(self, me: int, target: int, notifications: bool, expires_at: int, edge_id: int, now_ms: int) -> None:
        """Mute, or change an existing mute's settings (a mute again resets its duration, as Mastodon's does)."""

        async def work(tx: AsyncManagedTransaction) -> None:
            updated = await (
                await tx.run(
                    "MATCH (:Account {id: $a})-[r:MUTES]->(:Account {id: $b}) "
                    "SET r.notifications = $n, r.expires_at = $exp RETURN r.id AS id",
                    a=me,
                    b=target,
                    n=notifications,
                    exp=expires_at,
                )
            ).data()
            if not updated:
                await tx.run(
                    "MATCH (a:Account {id: $a}), (b:Account {id: $b}) "
                    "CREATE (a)-[:MUTES {id: $edge, created_at: $now, notifications: $n, expires_at: $exp}]->(b)",
                    a=me,
                    b=target,
                    edge=edge_id,
                    now=now_ms,
                    n=notifications,
                    exp=expires_at,
                )

        await self.graph.write_transaction(work)

    async def unmute(self, me: int, target: int) -> bool:
        return await self._delete("MUTES", me, target)

    # -- follow requests ------------------------------------------------------------

    async def request_follow(self, me: int, target: int, edge_id: int, now_ms: int) -> bool:
        """Record a pending follow once (True if created now)."""

        async def work(tx: AsyncManagedTransaction) -> bool:
            return await _create_once(tx, "REQUESTED", me, target, edge_id, now_ms)

        return await self.graph.write_transaction(work)

    async def withdraw_request(self, requester: int, target: int) -> bool:
        """Remove a pending request (authorized, rejected or withdrawn); True if there was one."""
        return await self._delete("REQUESTED", requester, target)

    async def _delete(self, edge_type: EdgeType, a: int, b: int) -> bool:
        """Delete ``a``'s edge of ``edge_type`` to ``b``; True if there was one."""
        rows = await self.graph.write(
            f"MATCH (:Account {{id: $a}})-[r:{edge_type}]->(:Account {{id: $b}}) DELETE r RETURN count(*) AS n",
            a=a,
            b=b,
        )
        return bool(rows and rows[0]["n"])

    async def requested(self, me: int, others: list[int]) -> set[int]:
        """Which of ``others`` ``me`` has asked to follow (pending)."""
        if not others:
            return set()
        rows = await self.graph.read(
            "MATCH (:Account {id: $me})-[:REQUESTED]->(t:Account) WHERE t.id IN $ids RETURN t.id AS id",
            me=me,
            ids=others,
        )
        return {r["id"] for r in rows}

    async def requested_by(self, me: int, others: list[int]) -> set[int]:
        """Which of ``others`` have asked to follow ``me`` (pending)."""
        if not others:
            return set()
        rows = await self.graph.read(
            "MATCH (:Account {id: $me})<-[:REQUESTED]-(t:Account) WHERE t.id IN $ids RETURN t.id AS id",
            me=me,
            ids=others,
        )
        return {r["id"] for r in rows}

    async def requesters(self, target: int, limit: int) -> list[int]:
        """Up to ``limit`` accounts with a pending request to ``target``, oldest first (to approve in order)."""
        rows = await self.graph.read(
            "MATCH (a:Account)-[r:REQUESTED]->(:Account {id: $id}) RETURN a.id AS id ORDER BY r.id LIMIT $limit",
            id=target,
            limit=limit,
        )
        return [r["id"] for r in rows]

    async def count_requests(self, target: int) -> int:
        rows = await self.graph.read(
            "MATCH (:Account)-[r:REQUESTED]->(:Account {id: $id}) RETURN count(r) AS n", id=target
        )
        return int(rows[0]["n"]) if rows else 0

    # -- lists ----------------------------------------------------------------------

    async def page(
        self, account_id: int, kind: str, max_id: int | None, since_id: int | None, limit: int, now_ms: int = 0
    ) -> list[tuple[int, Row]]:
        """(edge id, account) pairs, newest first: whom the account blocks (``BLOCKS``) or mutes (``MUTES``,
        unexpired at ``now_ms``), or who asks to follow it (``REQUESTED``, incoming)."""
        if kind not in EDGE_TYPES:
            raise ValueError(kind)
        pattern = (
            "(:Account {id: $id})<-[r:REQUESTED]-(a:Account)"
            if kind == "REQUESTED"
            else f"(:Account {{id: $id}})-[r:{kind}]->(a:Account)"
        )
        unexpired = " AND (r.expires_at = 0 OR r.expires_at > $now)" if kind == "MUTES" else ""
        rows = await self.graph.read(
            f"""
            MATCH {pattern}
            WHERE r.id < $max AND r.id > $since{unexpired}
            RETURN r.id AS cursor, a {{ {ACCOUNT_FIELDS} }} AS account
            ORDER BY r.id DESC LIMIT $limit
            """,
            id=account_id,
            max=max_id if max_id is not None else MAX_ID,
            since=since_id if since_id is not None else 0,
            now=now_ms,
            limit=limit,
        )
        return [(r["cursor"], r["account"]) for r in rows]

    # -- the cache's source -----------------------------------------------------------

    async def relations_of(self, viewer: int, limit: int, now_ms: int) -> Relations:
        """Everything the read path filters by for ``viewer``: at most ``limit`` of each kind."""
        blocking = await self.graph.read(
            "MATCH (:Account {id: $id})-[:BLOCKS]->(t:Account) RETURN t.id AS id LIMIT $limit",
            id=viewer,
            limit=limit + 1,
        )
        blocked_by = await self.graph.read(
            "MATCH (:Account {id: $id})<-[:BLOCKS]-(t:Account) RETURN t.id AS id LIMIT $limit",
            id=viewer,
            limit=limit + 1,
        )
        muting = await self.graph.read(
            "MATCH (:Account {id: $id})-[r:MUTES]->(t:Account) WHERE r.expires_at = 0 OR r.expires_at > $now "
            "RETURN t.id AS id, r.notifications AS n, r.expires_at AS exp LIMIT $limit",
            id=viewer,
            now=now_ms,
            limit=limit + 1,
        )
        complete = max(len(blocking), len(blocked_by), len(muting)) <= limit
        return Relations(
            {r["id"] for r in blocking[:limit]},
            {r["id"] for r in blocked_by[:limit]},
            {r["id"]: (bool(r["n"]), int(r["exp"] or 0)) for r in muting[:limit]},
            complete,
        )

    async def relations_among(self, viewer: int, others: list[int], now_ms: int) -> Relations:
        """The same facts for ``others`` only: the fallback for a viewer with more relations than the cache holds."""
        if not others:
            return Relations(set(), set(), {}, True)
        rows = await self.graph.read(
            """
            MATCH (v:Account {id: $id}), (t:Account) WHERE t.id IN $ids
            OPTIONAL MATCH (v)-[b:BLOCKS]->(t)
            OPTIONAL MATCH (t)-[bb:BLOCKS]->(v)
            OPTIONAL MATCH (v)-[m:MUTES]->(t)
            RETURN t.id AS id, b IS NOT NULL AS blocking, bb IS NOT NULL AS blocked_by,
                   m.notifications AS n, m.expires_at AS exp
            """,
            id=viewer,
            ids=others,
        )
        muting = {}
        for r in rows:
            if r["exp"] is not None and (r["exp"] == 0 or r["exp"] > now_ms):
                muting[r["id"]] = (bool(r["n"]), int(r["exp"]))
        return Relations(
            {r["id"] for r in rows if r["blocking"]}, {r["id"] for r in rows if r["blocked_by"]}, muting, True
        )
