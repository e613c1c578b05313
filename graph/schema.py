"""The graph schema: uniqueness constraints and the indexes the queries need.

Applied at every start; each statement is ``IF NOT EXISTS``, so applying it
twice is harmless. Neo4j 5 syntax, which ArcadeDB's Cypher accepts too.
"""

from __future__ import annotations

import neo4j

STATEMENTS: tuple[str, ...] = (
    "CREATE CONSTRAINT account_id IF NOT EXISTS FOR (a:Account) REQUIRE a.id IS UNIQUE",
    "CREATE CONSTRAINT account_username IF NOT EXISTS FOR (a:Account) REQUIRE a.username_key IS UNIQUE",
    "CREATE CONSTRAINT account_email IF NOT EXISTS FOR (a:Account) REQUIRE a.email_key IS UNIQUE",
    "CREATE INDEX account_display_name IF NOT EXISTS FOR (a:Account) ON (a.display_name_key)",
    "CREATE CONSTRAINT import_job_key IF NOT EXISTS FOR (j:ImportJob) REQUIRE j.key IS UNIQUE",
    "CREATE CONSTRAINT app_id IF NOT EXISTS FOR (p:App) REQUIRE p.id IS UNIQUE",
    "CREATE CONSTRAINT app_client_id IF NOT EXISTS FOR (p:App) REQUIRE p.client_id IS UNIQUE",
    "CREATE CONSTRAINT token_hash IF NOT EXISTS FOR (t:Token) REQUIRE t.hash IS UNIQUE",
    "CREATE INDEX token_account IF NOT EXISTS FOR (t:Token) ON (t.account_id)",
    "CREATE CONSTRAINT status_id IF NOT EXISTS FOR (s:Status) REQUIRE s.id IS UNIQUE",
    "CREATE INDEX status_account IF NOT EXISTS FOR (s:Status) ON (s.account_id)",
    "CREATE INDEX status_delivered IF NOT EXISTS FOR (s:Status) ON (s.delivered)",
    "CREATE INDEX status_reblog_of IF NOT EXISTS FOR (s:Status) ON (s.reblog_of_id)",
    "CREATE CONSTRAINT tag_name IF NOT EXISTS FOR (t:Tag) REQUIRE t.name IS UNIQUE",
    "CREATE CONSTRAINT media_id IF NOT EXISTS FOR (m:Media) REQUIRE m.id IS UNIQUE",
    "CREATE INDEX media_account IF NOT EXISTS FOR (m:Media) ON (m.account_id)",
    "CREATE INDEX media_state IF NOT EXISTS FOR (m:Media) ON (m.state)",
    "CREATE INDEX media_sha256 IF NOT EXISTS FOR (m:Media) ON (m.sha256)",
    "CREATE CONSTRAINT story_id IF NOT EXISTS FOR (s:Story) REQUIRE s.id IS UNIQUE",
    "CREATE INDEX story_account IF NOT EXISTS FOR (s:Story) ON (s.account_id)",
    "CREATE INDEX story_expired IF NOT EXISTS FOR (s:Story) ON (s.expired)",
    "CREATE INDEX story_delivered IF NOT EXISTS FOR (s:Story) ON (s.delivered)",
)


def apply_schema(uri: str, user: str, password: str, database: str) -> None:
    """Create every constraint and index that does not exist yet."""
    with neo4j.GraphDatabase.driver(uri, auth=(user, password)) as driver:
        with driver.session(database=database) as session:
            for statement in STATEMENTS:
                session.execute_write(lambda tx, q=statement: tx.run(q).consume())
