"""Account and hashtag search in the graph: name prefixes, through their indexes.

``username_key`` (unique) and ``display_name_key`` (indexed) hold the
lower-cased username and display name, and ``Tag.name`` (unique) the
normalized tag name, so a prefix is one index range each. Each stops at
``candidates``; the service ranks what was found.
"""

from __future__ import annotations

from graph.accounts import ACCOUNT_FIELDS
from graph.driver import GraphClient, Row


class AccountSearchGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def by_prefix(self, prefix: str, candidates: int) -> list[Row]:
        """Accounts whose username or display name starts with ``prefix`` (lower case), each once."""
        rows = await self.graph.read(
            f"""
            MATCH (a:Account) WHERE a.username_key STARTS WITH $prefix
            WITH a LIMIT $candidates RETURN a {{ {ACCOUNT_FIELDS} }} AS account
            UNION
            MATCH (a:Account) WHERE a.display_name_key STARTS WITH $prefix
            WITH a LIMIT $candidates RETURN a {{ {ACCOUNT_FIELDS} }} AS account
            """,
            prefix=prefix,
            candidates=candidates,
        )
        found: dict[int, Row] = {}
        for row in rows:
            found.setdefault(row["account"]["id"], row["account"])
        return list(found.values())

    async def followed_among(self, viewer: int, ids: list[int]) -> set[int]:
        """Which of ``ids`` the viewer follows (one query)."""
        if not ids:
            return set()
        rows = await self.graph.read(
            "MATCH (:Account {id: $me})-[:FOLLOWS]->(t:Account) WHERE t.id IN $ids RETURN t.id AS id",
            me=viewer,
            ids=ids,
        )
        return {r["id"] for r in rows}

    async def tags_by_prefix(self, prefix: str, candidates: int) -> list[Row]:
        """Tags (``{id, name, followers_count}``) whose normalized name starts with ``prefix``."""
        rows = await self.graph.read(
            "MATCH (t:Tag) WHERE t.name STARTS WITH $prefix "
            "RETURN t {.id, .name, .followers_count} AS tag LIMIT $candidates",
            prefix=prefix,
            candidates=candidates,
        )
        return [r["tag"] for r in rows]

    async def followed_tags_among(self, viewer: int, names: list[str]) -> set[str]:
        """Which of the tags ``names`` the viewer follows (one query)."""
        if not names:
            return set()
        rows = await self.graph.read(
            "MATCH (:Account {id: $me})-[:FOLLOWS_TAG]->(t:Tag) WHERE t.name IN $names RETURN t.name AS name",
            me=viewer,
            names=names,
        )
        return {r["name"] for r in rows}
