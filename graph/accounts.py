"""Accounts, OAuth apps and access tokens in the graph.

Credentials (the argon2 hash) sit on the account node but leave this module
only through ``credentials_by_login``; every other query projects the public
fields explicitly.
"""

from __future__ import annotations

from typing import Any

import neo4j.exceptions

from graph.driver import GraphClient, Row

ACCOUNT_FIELDS = """
    id: a.id, username: a.username, display_name: a.display_name, note: a.note,
    locked: a.locked, bot: a.bot, discoverable: a.discoverable, locale: a.locale,
    created_at: a.created_at, last_status_at: a.last_status_at,
    followers_count: a.followers_count, following_count: a.following_count,
    statuses_count: a.statuses_count, celebrity: a.celebrity, last_active_at: a.last_active_at
"""


class UsernameTaken(Exception):
    """The username (compared case-insensitively) already belongs to an account."""


class EmailTaken(Exception):
    """The email address already belongs to an account."""


class AccountGraph:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def create_account(
        self, *, account_id: int, username: str, email: str, password_hash: str, locale: str, created_at: int
    ) -> Row:
        """Create the account; the uniqueness constraints decide races between sign-ups."""
        try:
            rows = await self.graph.write(
                f"""
                CREATE (a:Account {{
                    id: $id, username: $username, username_key: $username_key,
                    email_key: $email_key, password_hash: $password_hash, locale: $locale,
                    display_name: '', note: '', locked: false, bot: false, discoverable: true,
                    created_at: $created_at, last_active_at: $created_at, last_status_at: null,
                    followers_count: 0, following_count: 0, statuses_count: 0, celebrity: false
                }})
                RETURN a {{ {ACCOUNT_FIELDS} }} AS account
                """,
                id=account_id,
                username=username,
                username_key=username.lower(),
                email_key=email.lower(),
                password_hash=password_hash,
                locale=locale,
                created_at=created_at,
            )
        except neo4j.exceptions.ConstraintError as exc:
            # Neo4j names the constraint, ArcadeDB the index ("Account[email_key]").
            if "email" in (exc.message or "").lower():
                raise EmailTaken from exc
            raise UsernameTaken from exc
        return rows[0]["account"]

    async def username_exists(self, username: str) -> bool:
        rows = await self.graph.read("MATCH (a:Account {username_key: $key}) RETURN a.id AS id", key=username.lower())
        return bool(rows)

    async def email_exists(self, email: str) -> bool:
        rows = await self.graph.read("MATCH (a:Account {email_key: $key}) RETURN a.id AS id", key=email.lower())
        return bool(rows)

    async def credentials_by_login(self, login: str) -> Row | None:
        """The account id and password hash for a username or an email address."""
        key = login.lower()
        field = "email_key" if "@" in key else "username_key"
        rows = await self.graph.read(
            f"MATCH (a:Account {{{field}: $key}}) RETURN a.id AS id, a.password_hash AS password_hash",
            key=key,
        )
        return rows[0] if rows else None

    async def get_accounts(self, account_ids: list[int]) -> dict[int, Row]:
        """Accounts by id in one query (missing ids are simply absent)."""
        if not account_ids:
            return {}
        rows = await self.graph.read(
            f"MATCH (a:Account) WHERE a.id IN $ids RETURN a {{ {ACCOUNT_FIELDS} }} AS account",
            ids=list(set(account_ids)),
        )
        return {row["account"]["id"]: row["account"] for row in rows}

    async def get_account(self, account_id: int) -> Row | None:
        return (await self.get_accounts([account_id])).get(account_id)

    async def get_by_username(self, username: str) -> Row | None:
        rows = await self.graph.read(
            f"MATCH (a:Account {{username_key: $key}}) RETURN a {{ {ACCOUNT_FIELDS} }} AS account",
            key=username.lower(),
        )
        return rows[0]["account"] if rows else None

    async def ids_by_usernames(self, usernames: list[str]) -> dict[str, tuple[int, str]]:
        """Lower-cased username -> (id, username as written at sign-up), for those that exist; one query."""
        if not usernames:
            return {}
        rows = await self.graph.read(
            "MATCH (a:Account) WHERE a.username_key IN $keys "
            "RETURN a.username_key AS key, a.id AS id, a.username AS name",
            keys=[u.lower() for u in usernames],
        )
        return {r["key"]: (r["id"], r["name"]) for r in rows}

    async def update_profile(self, account_id: int, changes: dict[str, Any]) -> Row | None:
        if "display_name" in changes:  # account search looks display names up by prefix (``graph.search``)
            changes = {**changes, "display_name_key": (changes["display_name"] or "").lower()}
        rows = await self.graph.write(
            f"MATCH (a:Account {{id: $id}}) SET a += $changes RETURN a {{ {ACCOUNT_FIELDS} }} AS account",
            id=account_id,
            changes=changes,
        )
        return rows[0]["account"] if rows else None

    # -- OAuth apps -------------------------------------------------------

    async def create_app(self, app: Row) -> None:
        await self.graph.write("CREATE (p:App) SET p = $app", app=app)

    async def get_app_by_client_id(self, client_id: str) -> Row | None:
        rows = await self.graph.read("MATCH (p:App {client_id: $cid}) RETURN p {.*} AS app", cid=client_id)
        return rows[0]["app"] if rows else None

    async def get_app(self, app_id: int) -> Row | None:
        rows = await self.graph.read("MATCH (p:App {id: $id}) RETURN p {.*} AS app", id=app_id)
        return rows[0]["app"] if rows else None

    # -- access tokens ----------------------------------------------------

    async def create_token(self, token: Row) -> None:
        await self.graph.write("CREATE (t:Token) SET t = $token", token=token)

    async def get_token(self, token_hash: str) -> Row | None:
        rows = await self.graph.read("MATCH (t:Token {hash: $hash}) RETURN t {.*} AS token", hash=token_hash)
        return rows[0]["token"] if rows else None

    async def delete_token(self, token_hash: str, app_id: int) -> bool:
        rows = await self.graph.write(
            "MATCH (t:Token {hash: $hash, app_id: $app_id}) DELETE t RETURN count(*) AS n",
            hash=token_hash,
            app_id=app_id,
        )
        return bool(rows and rows[0]["n"])
