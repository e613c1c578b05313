"""``raygram import``: an ``EdgeList`` into the graph as real accounts and follows, in bulk, resumably.

Three phases, each in batched ``UNWIND`` statements inside managed
transactions (``graph.driver``), never a call per account or per follow:

1. **Accounts**: one per node, ``MERGE``d on the username ``PREFIX + file id``
   (so a re-run finds the accounts a crashed run made), with the properties
   ``AccountGraph.create_account`` gives a sign-up; the ones listed in a
   passwords file get an argon2 hash made by ``services.passwords``, as at
   sign-up, so that they can log in. Each account carries the key of the job
   that created it (``import_job``).
2. **Follows**: edges as ``FollowGraph.follow`` makes them (a snowflake id and
   a time each), in fixed batches of the sorted edge list. The job's progress
   is an ``(:ImportJob {key})`` node whose ``done`` (batches written) moves in
   the same transaction as each batch, compare-and-set: a crash loses or keeps
   a batch together with its checkpoint, so a re-run resumes exactly where the
   graph is, and a second importer of the same job fails instead of doubling
   a batch. The job key is a hash of the edge list and the prefix. Follows
   from accounts this job created are plain ``CREATE``s (nobody else made
   follows for them: they could not log in yet); follows from accounts that
   existed before are created only where the edge is missing. Endpoints are
   looked up by ``elementId`` (fetched in phase 1), not by the ``id`` index:
   that halves the graph server's work per follow on ArcadeDB.
3. **Finish** (every run, idempotent): follower and following counts are
   recounted from the edges (``COUNT { }``), and the celebrity flag set as a
   follow through the API would leave it (at or over ``celebrity_threshold``,
   and kept until under ``demote_below``), in the same statement; every
   celebrity gets the ``account.promoted`` event (the fan-out workers fill its
   outbox and add it to every follower's celebrity set: a no-op where that is
   done already, and what an existing celebrity's new followers need), a
   demoted one ``account.demoted``; the Redis follower lists of every
   followed account are dropped, so that fan-out rebuilds them from the graph
   (``redis_store.followers``), and the cached account records are
   invalidated.

The counts are written as ``SET x = COUNT { }``: exact when nothing else
changes these accounts' follows meanwhile, which is what an import is for
(before the accounts are handed out). Imported accounts have no timeline in
Redis yet: their first home read builds it from the graph, as for anyone who
has not read for ``inactive_days``. Follows added to an account that already
existed and has a warm timeline do not backfill the followee's older posts
into it (a follow through the API does).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis
from neo4j import AsyncManagedTransaction

from config import Settings
from graph.driver import GraphClient
from ids import SnowflakeGenerator
from lab.graphs import EdgeList
from redis_store.cache import RecordCache
from redis_store.durability import Durability
from redis_store.events import EventStream
from redis_store.followers import FollowerLists
from services.passwords import Passwords

ACCOUNT_BATCH = 5_000
FOLLOW_BATCH = 20_000  # bench/import_bench.py: larger batches gain little, smaller ones pay per transaction
FINISH_BATCH = 5_000
REDIS_BATCH = 1_000
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]*$")

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class ImportFailed(RuntimeError):
    """The import cannot go on (a bad passwords file, a job taken over by another importer)."""


@dataclass
class ImportReport:
    """What a run did; ``follows_written`` counts this run's batches only (a resumed run skips the done ones)."""

    key: str
    accounts: int
    accounts_created: int
    follows: int
    follows_written: int
    batches_skipped: int
    celebrities: list[int] = field(default_factory=list)
    demoted: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def follows_per_second(self) -> float:
        return self.follows_written / self.seconds["follows"] if self.seconds.get("follows") else 0.0


def job_key(edges: EdgeList, prefix: str) -> str:
    """The same edge list with the same prefix is the same job, however often it is run."""
    digest = hashlib.blake2b(prefix.encode(), digest_size=12)
    for part in (edges.ids, edges.src, edges.dst):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


def read_passwords(path: Path, settings: Settings) -> dict[int, str]:
    """``ID PASSWORD`` per line (ID: the node's id in the graph file; whitespace or a comma between; ``#``
    comments); the password is the rest of the line and must be as long as sign-up requires."""
    passwords: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = re.match(r"(-?\d+)[\s,]+(.+)$", text)
        if match is None:
            raise ImportFailed(f"{path}, line {number}: expected a node id and a password")
        password = match.group(2)
        if not settings.password_min <= len(password) <= settings.password_max:
            raise ImportFailed(
                f"{path}, line {number}: a password has {settings.password_min} to {settings.password_max} characters"
            )
        passwords[int(match.group(1))] = password
    return passwords


class GraphImport:
    """One import of an ``EdgeList`` into the stack that ``settings`` describes (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        graph: GraphClient,
        redis: aioredis.Redis,
        ids: SnowflakeGenerator,
        progress: Progress | None = None,
    ) -> None:
        self.settings, self.graph, self.redis, self.ids = settings, graph, redis, ids
        self.progress = progress or (lambda phase, done, total: None)

    async def run(
        self,
        edges: EdgeList,
        prefix: str,
        passwords: dict[int, str] | None = None,
        batch: int = FOLLOW_BATCH,
    ) -> ImportReport:
        if not USERNAME_RE.match(prefix):
            raise ImportFailed("the prefix may hold only letters, numbers and underscores")
        if edges.ids.min() < 0:
            raise ImportFailed("negative node ids cannot be part of a username")
        longest = len(prefix) + len(str(int(edges.ids.max())))
        if longest > self.settings.username_max:
            raise ImportFailed(f"usernames would have {longest} characters, over {self.settings.username_max}")
        key = job_key(edges, prefix)
        report = ImportReport(key, edges.nodes, 0, len(edges), 0, 0)
        started = time.perf_counter()
        done, batch = await self._job(key, prefix, edges, batch)
        elements, ours, account_ids = await self._accounts(edges, prefix, key, passwords or {}, report)
        report.seconds["accounts"] = time.perf_counter() - started
        started = time.perf_counter()
        report.batches_skipped = done
        await self._follows(edges, key, elements, ours, done, batch, report)
        report.seconds["follows"] = time.perf_counter() - started
        started = time.perf_counter()
        await self._finish(edges, key, elements, account_ids, report)
        report.seconds["finish"] = time.perf_counter() - started
        return report

    # -- the job --------------------------------------------------------------------

    async def _job(self, key: str, prefix: str, edges: EdgeList, batch: int) -> tuple[int, int]:
        """(batches done, batch size) of the job, created at 0 on its first run; a resumed job keeps its batches."""
        rows = await self.graph.write(
            """
            MERGE (j:ImportJob {key: $key})
            ON CREATE SET j.prefix = $prefix, j.accounts = $accounts, j.follows = $follows, j.batch = $batch,
                          j.done = 0, j.created_at = $now
            RETURN j.done AS done, j.batch AS batch
            """,
            key=key,
            prefix=prefix,
            accounts=edges.nodes,
            follows=len(edges),
            batch=batch,
            now=int(time.time() * 1000),
        )
        return rows[0]["done"], rows[0]["batch"]

    # -- accounts -------------------------------------------------------------------

    async def _accounts(
        self, edges: EdgeList, prefix: str, key: str, passwords: dict[int, str], report: ImportReport
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """MERGE every node's account; (element ids, created by this job?, account ids), by node."""
        listed = np.fromiter(passwords, dtype=np.int64, count=len(passwords))
        unknown = listed[~np.isin(listed, edges.ids)]
        if len(unknown):
            raise ImportFailed(f"the passwords file names ids not in the graph: {sorted(unknown.tolist())[:5]}")
        hashes = await self._hashes(passwords)
        elements = np.empty(edges.nodes, dtype=object)
        ours = np.zeros(edges.nodes, dtype=bool)
        account_ids = np.zeros(edges.nodes, dtype=np.int64)
        domain = self.settings.instance_domain.lower()
        self.progress("accounts", 0, edges.nodes)
        for start in range(0, edges.nodes, ACCOUNT_BATCH):
            stop = min(start + ACCOUNT_BATCH, edges.nodes)
            now = int(time.time() * 1000)
            rows = []
            row_ids = [self.ids.next_id() for _ in range(start, stop)]  # used by the accounts created now
            for node in range(start, stop):
                original = int(edges.ids[node])
                username = f"{prefix}{original}"
                rows.append(
                    {
                        "i": node,
                        "id": row_ids[node - start],
                        "username": username,
                        "key": username.lower(),
                        "email": f"{username.lower()}@{domain}",
                        "hash": hashes.get(original),
                    }
                )
            result = await self.graph.write(
                """
                UNWIND $rows AS r
                MERGE (a:Account {username_key: r.key})
                ON CREATE SET a.id = r.id, a.username = r.username, a.email_key = r.email,
                    a.password_hash = r.hash, a.locale = 'en', a.display_name = '', a.note = '', a.locked = false,
                    a.bot = false, a.discoverable = true, a.created_at = $now, a.last_active_at = $now,
                    a.last_status_at = null, a.followers_count = 0, a.following_count = 0, a.statuses_count = 0,
                    a.celebrity = false, a.import_job = $job
                WITH r, a
                SET a.password_hash = coalesce(r.hash, a.password_hash)
                RETURN r.i AS i, a.id AS id, elementId(a) AS element, a.import_job = $job AS ours
                """,
                rows=rows,
                now=now,
                job=key,
            )
            for row in result:
                node = row["i"]
                elements[node], ours[node], account_ids[node] = row["element"], bool(row["ours"]), row["id"]
                report.accounts_created += row["id"] == row_ids[node - start]
            self.progress("accounts", stop, edges.nodes)
        return elements, ours, account_ids

    async def _hashes(self, passwords: dict[int, str]) -> dict[int, str]:
        """Argon2 hashes as sign-up makes them (slow by design: two at a time, one per core)."""
        hasher = Passwords(self.settings)
        gate = asyncio.Semaphore(2)

        async def one(node: int, password: str) -> tuple[int, str]:
            async with gate:
                return node, await hasher.hash(password)

        return dict(await asyncio.gather(*(one(n, p) for n, p in passwords.items())))

    # -- follows ---------------------------------------------------------------------

    async def _follows(
        self,
        edges: EdgeList,
        key: str,
        elements: np.ndarray,
        ours: np.ndarray,
        done: int,
        batch: int,
        report: ImportReport,
    ) -> None:
        total = len(edges)
        batches = -(-total // batch)
        self.progress("follows", min(done * batch, total), total)
        if done >= batches:
            return
        prepared = asyncio.ensure_future(asyncio.to_thread(self._prepare, edges, elements, ours, done, batch))
        for index in range(done, batches):
            rows = await prepared
            if index + 1 < batches:  # the next batch's parameters are made while this one is written
                prepared = asyncio.ensure_future(
                    asyncio.to_thread(self._prepare, edges, elements, ours, index + 1, batch)
                )
            await self.graph.write_transaction(lambda tx, rows=rows, index=index: self._write(tx, key, index, rows))
            report.follows_written += rows["follows"]
            self.progress("follows", min((index + 1) * batch, total), total)

    def _prepare(self, edges: EdgeList, elements: np.ndarray, ours: np.ndarray, index: int, batch: int) -> dict:
        """One batch's parameters: per follower, its followees by element id with the new edges' ids; split by
        whether the follower is this job's. A row per follower looks each follower up once (the edges are
        sorted by follower): about a quarter less graph-server work than a row per follow."""
        part = slice(index * batch, min((index + 1) * batch, len(edges)))
        src, dst = edges.src[part], edges.dst[part]
        edge_ids = [self.ids.next_id() for _ in range(len(src))]
        followees = elements[dst].tolist()
        starts = [0, *(np.flatnonzero(np.diff(src)) + 1).tolist(), len(src)]
        groups: dict[bool, list] = {True: [], False: []}
        for first, last in itertools.pairwise(starts):
            follower = src[first]
            rows = [[followees[k], edge_ids[k]] for k in range(first, last)]
            groups[bool(ours[follower])].append({"a": elements[follower], "r": rows})
        return {"new": groups[True], "old": groups[False], "follows": len(src), "t": int(time.time() * 1000)}

    @staticmethod
    async def _write(tx: AsyncManagedTransaction, key: str, index: int, rows: dict) -> None:
        """Batch ``index`` and the checkpoint that says it is written, in one transaction."""
        moved = await (
            await tx.run(
                "MATCH (j:ImportJob {key: $key}) WHERE j.done = $index SET j.done = $index + 1 RETURN j.done AS done",
                key=key,
                index=index,
            )
        ).data()
        if not moved:
            raise ImportFailed(f"batch {index} of import job {key} was written by another importer meanwhile")
        for groups, only_missing in ((rows["new"], ""), (rows["old"], "WHERE NOT EXISTS { (a)-[:FOLLOWS]->(b) }")):
            if groups:
                await (
                    await tx.run(
                        f"""
                        UNWIND $groups AS g
                        MATCH (a) WHERE elementId(a) = g.a
                        UNWIND g.r AS r
                        MATCH (b) WHERE elementId(b) = r[0]
                        WITH a, b, r {only_missing}
                        CREATE (a)-[:FOLLOWS {{id: r[1], created_at: $t}}]->(b)
                        """,
                        groups=groups,
                        t=rows["t"],
                    )
                ).consume()

    # -- finish ----------------------------------------------------------------------

    async def _finish(
        self, edges: EdgeList, key: str, elements: np.ndarray, account_ids: np.ndarray, report: ImportReport
    ) -> None:
        s = self.settings
        self.progress("counts", 0, edges.nodes)
        for start in range(0, edges.nodes, FINISH_BATCH):
            stop = min(start + FINISH_BATCH, edges.nodes)
            rows = await self.graph.write(
                """
                UNWIND $elements AS e
                MATCH (a) WHERE elementId(a) = e
                WITH a, a.celebrity AS was, COUNT { (a)<-[:FOLLOWS]-() } AS followers,
                     COUNT { (a)-[:FOLLOWS]->() } AS following
                SET a.followers_count = followers, a.following_count = following,
                    a.celebrity = CASE WHEN followers >= $threshold THEN true
                                       WHEN followers < $below THEN false ELSE a.celebrity END
                WITH a, was WHERE a.celebrity OR was
                RETURN a.id AS id, was, a.celebrity AS celebrity
                """,
                elements=elements[start:stop].tolist(),
                threshold=s.celebrity_threshold,
                below=s.demote_below,
            )
            for row in rows:
                (report.celebrities if row["celebrity"] else report.demoted).append(row["id"])
            self.progress("counts", stop, edges.nodes)
        await self.graph.write(
            "MATCH (j:ImportJob {key: $key}) SET j.finished_at = $now", key=key, now=int(time.time() * 1000)
        )
        followed = account_ids[np.unique(edges.dst)].tolist()
        lists = FollowerLists(self.redis, s.follower_list_days)
        cache = RecordCache(self.redis, "account", s.account_cache_seconds)
        for start in range(0, len(followed), REDIS_BATCH):
            await lists.drop_many(followed[start : start + REDIS_BATCH])
        everyone = account_ids.tolist()
        for start in range(0, len(everyone), REDIS_BATCH):
            await cache.invalidate(*everyone[start : start + REDIS_BATCH])
        events = EventStream(self.redis, maxlen=s.event_stream_max, durability=Durability.configured(s))
        for account_id in report.celebrities:
            await events.publish("account.promoted", account_id=account_id)
        for account_id in report.demoted:
            await events.publish("account.demoted", account_id=account_id)
