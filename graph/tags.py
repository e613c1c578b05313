"""Hashtags in the graph: ``(:Status)-[:TAGGED]->(:Tag {id, name, followers_count})`` and
``(:Account)-[:FOLLOWS_TAG {id, created_at}]->(:Tag)``.

``Tag.name`` is the normalized name (``services.hashtags.normalize``: lower
case), unique. Tag nodes are made before the post that first uses them, in
their own idempotent write: two posts introducing the same tag at once would
otherwise both create it inside their transactions and one would fail on the
uniqueness constraint. The post's transaction then only finds them
(``link_tags``). Tags are never deleted. ``followers_count`` changes in the
same transaction as the follow edge; followed tags page by the edge's id.
"""

from __future__ import annotations

from neo4j import AsyncManagedTransaction
from neo4j.exceptions import ConstraintError

from graph.driver import GraphClient, Row

TAG_FIELDS = "t {.id, .name, .followers_count} AS tag"
MAX_ID = 2**63 - 1


async def link_tags(tx: AsyncManagedTransaction, status_id: int, names: list[str]) -> None:
    """Inside a post's transaction: its TAGGED edges (the tags exist already: ``TagGraph.ensure``)."""
    if names:
        await tx.run(
            "MATCH (s:Status {id: $id}) UNWIND $names AS name MATCH (t:Tag {name: name}) CREATE (s)-[:TAGGED]->(t)",
            id=status_id,
            names=names,
        )


class TagGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def ensure(self, names: list[str], new_ids: list[int]) -> None:
        """Create the tags that do not exist yet (``new_ids``: an id for each name, used if it is new)."""
        if not names:
            return
        pairs = [{"name": n, "id": i} for n, i in zip(names, new_ids, strict=True)]
        query = "UNWIND $pairs AS p MERGE (t:Tag {name: p.name}) ON CREATE SET t.id = p.id, t.followers_count = 0"
        try:
            await self.graph.write(query, pairs=pairs)
        except ConstraintError:  # another post created one of them meanwhile: now they all exist or merge
            await self.graph.write(query, pairs=pairs)

    async def get_many(self, names: list[str]) -> dict[str, Row]:
        if not names:
            return {}
        rows = await self.graph.read(f"MATCH (t:Tag) WHERE t.name IN $names RETURN {TAG_FIELDS}", names=names)
        return {r["tag"]["name"]: r["tag"] for r in rows}

    async def follow(self, account_id: int, name: str, edge_id: int, now_ms: int) -> Row | None:
        """Follow once (a repeat changes nothing); the tag, or None if the account is gone."""

        async def work(tx: AsyncManagedTransaction) -> Row | None:
            rows = await (
                await tx.run(
                    f"""
                    MATCH (a:Account {{id: $aid}}), (t:Tag {{name: $name}})
                    OPTIONAL MATCH (a)-[f:FOLLOWS_TAG]->(t)
                    RETURN {TAG_FIELDS}, f IS NOT NULL AS following
                    """,
                    aid=account_id,
                    name=name,
                )
            ).data()
            if not rows:
                return None
            if rows[0]["following"]:
                return rows[0]["tag"]
            rows = await (
                await tx.run(
                    f"""
                    MATCH (a:Account {{id: $aid}}), (t:Tag {{name: $name}})
                    CREATE (a)-[:FOLLOWS_TAG {{id: $edge, created_at: $now}}]->(t)
                    SET t.followers_count = coalesce(t.followers_count, 0) + 1
                    RETURN {TAG_FIELDS}
                    """,
                    aid=account_id,
                    name=name,
                    edge=edge_id,
                    now=now_ms,
                )
            ).data()
            return rows[0]["tag"]

        return await self.graph.write_transaction(work)

    async def unfollow(self, account_id: int, name: str) -> Row | None:
        """Unfollow if following; the tag, or None if there is no such tag."""

        async def work(tx: AsyncManagedTransaction) -> Row | None:
            deleted = await (
                await tx.run(
                    "MATCH (:Account {id: $aid})-[f:FOLLOWS_TAG]->(t:Tag {name: $name}) DELETE f RETURN count(*) AS n",
                    aid=account_id,
                    name=name,
                )
            ).data()
            change = "SET t.followers_count = t.followers_count - 1 " if deleted and deleted[0]["n"] else ""
            rows = await (await tx.run(f"MATCH (t:Tag {{name: $name}}) {change}RETURN {TAG_FIELDS}", name=name)).data()
            return rows[0]["tag"] if rows else None

        return await self.graph.write_transaction(work)

    async def followed(
        self, account_id: int, max_id: int | None, since_id: int | None, min_id: int | None, limit: int
    ) -> list[tuple[int, Row]]:
        """(follow edge id, tag) of the tags an account follows, newest follow first."""
        order = "ASC" if min_id is not None else "DESC"
        rows = await self.graph.read(
            f"""
            MATCH (:Account {{id: $aid}})-[f:FOLLOWS_TAG]->(t:Tag) WHERE f.id < $max AND f.id > $after
            RETURN f.id AS edge, {TAG_FIELDS} ORDER BY f.id {order} LIMIT $limit
            """,
            aid=account_id,
            max=max_id if max_id is not None else MAX_ID,
            after=min_id if min_id is not None else (since_id or 0),
            limit=limit,
        )
        return sorted(((r["edge"], r["tag"]) for r in rows), key=lambda pair: pair[0], reverse=True)

    async def following(self, account_id: int, names: list[str]) -> set[str]:
        """Which of ``names`` the account follows (one query for a page of tags)."""
        if not names:
            return set()
        rows = await self.graph.read(
            "MATCH (:Account {id: $aid})-[:FOLLOWS_TAG]->(t:Tag) WHERE t.name IN $names RETURN t.name AS name",
            aid=account_id,
            names=names,
        )
        return {r["name"] for r in rows}

    async def followed_names(self, account_id: int, limit: int) -> list[str]:
        rows = await self.graph.read(
            "MATCH (:Account {id: $aid})-[:FOLLOWS_TAG]->(t:Tag) RETURN t.name AS name LIMIT $limit",
            aid=account_id,
            limit=limit,
        )
        return [r["name"] for r in rows]

    async def follower_ids(self, names: list[str], after: int, limit: int) -> list[int]:
        """A page of the accounts following any of ``names``, each once, in id order after ``after``."""
        if not names:
            return []
        rows = await self.graph.read(
            "MATCH (a:Account)-[:FOLLOWS_TAG]->(t:Tag) WHERE t.name IN $names AND a.id > $after "
            "RETURN DISTINCT a.id AS id ORDER BY id LIMIT $limit",
            names=names,
            after=after,
            limit=limit,
        )
        return [r["id"] for r in rows]
