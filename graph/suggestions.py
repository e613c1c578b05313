"""Follow suggestions in the graph: friends of friends, popular active accounts, dismissals.

A dismissal is an edge ``(:Account)-[:DISMISSED {created_at}]->(:Account)``,
kept for good. Friends of friends look at the viewer's ``FOLLOWEES_SAMPLED``
most recent follows and at most ``PATHS`` second-hop edges; ``eligible``
reads a given list of ids. ``popular`` reads every account (no index serves
"most followed"): it is one list for all users, which the service computes
at most once per cache period. The exclusions (the viewer, whom they follow
or asked to follow, blocks either way, mutes, dismissals) are pattern checks
on the edges, the same in every query.
"""

from __future__ import annotations

from graph.accounts import ACCOUNT_FIELDS
from graph.driver import GraphClient, Row

FOLLOWEES_SAMPLED = 200  # the viewer's most recent follows whose own follows count
PATHS = 20_000  # second-hop edges read at most
EXCLUDED = """
    c.id <> me.id AND (c.discoverable IS NULL OR c.discoverable = true)
    AND NOT (me)-[:FOLLOWS]->(c) AND NOT (me)-[:BLOCKS]-(c) AND NOT (me)-[:MUTES]->(c)
    AND NOT (me)-[:REQUESTED]->(c) AND NOT (me)-[:DISMISSED]->(c)
"""


class SuggestionGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def friends_of_friends(self, me: int, limit: int) -> list[int]:
        """Accounts followed by those the viewer follows: most such followees first, then fewest followers."""
        rows = await self.graph.read(
            f"""
            MATCH (me:Account {{id: $me}})-[r:FOLLOWS]->(f:Account)
            WITH me, f ORDER BY r.id DESC LIMIT $sampled
            MATCH (f)-[:FOLLOWS]->(c:Account)
            WITH me, f, c LIMIT $paths
            WITH me, c, count(DISTINCT f) AS mutuals
            WHERE {EXCLUDED}
            RETURN c.id AS id, mutuals, c.followers_count AS followers
            ORDER BY mutuals DESC, followers ASC, id ASC LIMIT $limit
            """,
            me=me,
            sampled=FOLLOWEES_SAMPLED,
            paths=PATHS,
            limit=limit,
        )
        return [r["id"] for r in rows]

    async def popular(self, active_since_ms: int, limit: int) -> list[int]:
        """The most followed discoverable accounts that posted since ``active_since_ms`` (everyone's list: the
        caller shares it between users for minutes)."""
        rows = await self.graph.read(
            """
            MATCH (c:Account)
            WHERE c.followers_count > 0 AND c.last_status_at > $since
              AND (c.discoverable IS NULL OR c.discoverable = true)
            RETURN c.id AS id ORDER BY c.followers_count DESC, c.id ASC LIMIT $limit
            """,
            since=active_since_ms,
            limit=limit,
        )
        return [r["id"] for r in rows]

    async def eligible(self, me: int, ids: list[int]) -> dict[int, Row]:
        """The accounts among ``ids`` that may be suggested to the viewer now, by id (one query)."""
        if not ids:
            return {}
        rows = await self.graph.read(
            f"""
            MATCH (me:Account {{id: $me}}), (c:Account) WHERE c.id IN $ids AND {EXCLUDED}
            WITH c AS a RETURN a {{ {ACCOUNT_FIELDS} }} AS account
            """,
            me=me,
            ids=ids,
        )
        return {r["account"]["id"]: r["account"] for r in rows}

    async def dismiss(self, me: int, target: int, now_ms: int) -> bool:
        """Never suggest ``target`` to the viewer again; False if there is no such account."""
        rows = await self.graph.write(
            """
            MATCH (me:Account {id: $me}), (c:Account {id: $target})
            MERGE (me)-[d:DISMISSED]->(c) ON CREATE SET d.created_at = $now
            RETURN c.id AS id
            """,
            me=me,
            target=target,
            now=now_ms,
        )
        return bool(rows)
