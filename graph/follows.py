"""The follow graph: ``(:Account)-[:FOLLOWS {id, created_at}]->(:Account)``.

Follower and following counts are stored on the accounts and changed in the
same transaction as the edge, so they stay exact without counting. Lists are
paged by the edge's snowflake id (newest follow first, as Mastodon does).
Fan-out reads followers from a list in Redis derived from these edges
(``redis_store.followers``); ``follower_ids`` pages them by account id, the
order that list keeps, to rebuild it and while it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from neo4j import AsyncManagedTransaction

from graph.accounts import ACCOUNT_FIELDS
from graph.driver import GraphClient, Row


@dataclass(frozen=True)
class FollowChange:
    """What a follow or unfollow did: whether the edge changed, and the followee's new standing."""

    changed: bool
    followers_count: int
    celebrity: bool
    promoted: bool = False
    demoted: bool = False


class FollowGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def follow(self, follower: int, followee: int, edge_id: int, now_ms: int, threshold: int) -> FollowChange:
        """Create the edge once (a repeat is a no-op); promote the followee at ``threshold`` followers."""

        async def work(tx: AsyncManagedTransaction) -> FollowChange:
            existing = await (
                await tx.run(
                    "MATCH (:Account {id: $a})-[f:FOLLOWS]->(b:Account {id: $b}) "
                    "RETURN b.followers_count AS n, b.celebrity AS celebrity",
                    a=follower,
                    b=followee,
                )
            ).data()
            if existing:
                return FollowChange(False, existing[0]["n"], bool(existing[0]["celebrity"]))
            rows = await (
                await tx.run(
                    """
                    MATCH (a:Account {id: $a}), (b:Account {id: $b})
                    CREATE (a)-[:FOLLOWS {id: $edge, created_at: $now}]->(b)
                    SET a.following_count = a.following_count + 1, b.followers_count = b.followers_count + 1
                    WITH b, b.celebrity = false AND b.followers_count >= $threshold AS promote
                    SET b.celebrity = b.celebrity OR promote
                    RETURN b.followers_count AS n, b.celebrity AS celebrity, promote
                    """,
                    a=follower,
                    b=followee,
                    edge=edge_id,
                    now=now_ms,
                    threshold=threshold,
                )
            ).data()
            row = rows[0]
            return FollowChange(True, row["n"], bool(row["celebrity"]), promoted=bool(row["promote"]))

        return await self.graph.write_transaction(work)

    async def unfollow(self, follower: int, followee: int, demote_below: int) -> FollowChange:
        """Delete the edge if present; demote the followee once below ``demote_below`` followers."""

        async def work(tx: AsyncManagedTransaction) -> FollowChange:
            rows = await (
                await tx.run(
                    """
                    MATCH (a:Account {id: $a})-[f:FOLLOWS]->(b:Account {id: $b})
                    DELETE f
                    SET a.following_count = a.following_count - 1, b.followers_count = b.followers_count - 1
                    WITH b, b.celebrity = true AND b.followers_count < $below AS demote
                    SET b.celebrity = b.celebrity AND NOT demote
                    RETURN b.followers_count AS n, b.celebrity AS celebrity, demote
                    """,
                    a=follower,
                    b=followee,
                    below=demote_below,
                )
            ).data()
            if not rows:
                current = await (
                    await tx.run(
                        "MATCH (b:Account {id: $b}) RETURN b.followers_count AS n, b.celebrity AS celebrity",
                        b=followee,
                    )
                ).data()
                return FollowChange(False, current[0]["n"] if current else 0, bool(current and current[0]["celebrity"]))
            row = rows[0]
            return FollowChange(True, row["n"], bool(row["celebrity"]), demoted=bool(row["demote"]))

        return await self.graph.write_transaction(work)

    async def is_following(self, me: int, other: int) -> bool:
        rows = await self.graph.read(
            "MATCH (:Account {id: $me})-[f:FOLLOWS]->(:Account {id: $other}) RETURN count(f) AS n", me=me, other=other
        )
        return bool(rows and rows[0]["n"])

    async def relationships(self, me: int, others: list[int]) -> tuple[set[int], set[int]]:
        """(whom of ``others`` I follow, who of ``others`` follows me): two bounded queries."""
        if not others:
            return set(), set()
        following = await self.graph.read(
            "MATCH (:Account {id: $me})-[:FOLLOWS]->(t:Account) WHERE t.id IN $ids RETURN t.id AS id",
            me=me,
            ids=others,
        )
        followed_by = await self.graph.read(
            "MATCH (:Account {id: $me})<-[:FOLLOWS]-(t:Account) WHERE t.id IN $ids RETURN t.id AS id",
            me=me,
            ids=others,
        )
        return {r["id"] for r in following}, {r["id"] for r in followed_by}

    async def page(
        self, account_id: int, direction: str, max_id: int | None, since_id: int | None, limit: int
    ) -> list[tuple[int, Row]]:
        """A page of followers (``direction="in"``) or followings (``"out"``), newest follow first.

        Returns (follow edge id, account) pairs; the edge id is the paging cursor.
        """
        pattern = (
            "(:Account {id: $id})<-[f:FOLLOWS]-(a:Account)"
            if direction == "in"
            else ("(:Account {id: $id})-[f:FOLLOWS]->(a:Account)")
        )
        rows = await self.graph.read(
            f"""
            MATCH {pattern}
            WHERE f.id < $max AND f.id > $since
            RETURN f.id AS cursor, a {{ {ACCOUNT_FIELDS} }} AS account
            ORDER BY f.id DESC LIMIT $limit
            """,
            id=account_id,
            max=max_id if max_id is not None else 2**63 - 1,
            since=since_id if since_id is not None else 0,
            limit=limit,
        )
        return [(r["cursor"], r["account"]) for r in rows]

    async def is_celebrity(self, account_id: int) -> bool | None:
        """Whether the graph has the account as a celebrity (None: no such account)."""
        rows = await self.graph.read("MATCH (a:Account {id: $id}) RETURN a.celebrity AS c", id=account_id)
        return bool(rows[0]["c"]) if rows else None

    async def follower_ids(self, account_id: int, after: int, limit: int) -> list[int]:
        """One page of follower ids in id order: rebuilds the Redis follower list, or stands in for it."""
        rows = await self.graph.read(
            "MATCH (:Account {id: $id})<-[:FOLLOWS]-(f:Account) WHERE f.id > $after "
            "RETURN f.id AS id ORDER BY id LIMIT $limit",
            id=account_id,
            after=after,
            limit=limit,
        )
        return [r["id"] for r in rows]

    async def followed_authors(self, account_id: int, limit: int) -> list[int]:
        rows = await self.graph.read(
            "MATCH (:Account {id: $id})-[:FOLLOWS]->(a:Account) RETURN a.id AS id LIMIT $limit",
            id=account_id,
            limit=limit,
        )
        return [r["id"] for r in rows]
