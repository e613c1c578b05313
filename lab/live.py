"""Live mode: the trace driven over HTTP through a real stack, every figure read back from its stores.

``run`` starts an isolated stack (``Stack.isolated``: its own state folder,
free loopback ports and Ray namespace, never the user's data), imports the
graph with ``lab.importer``, and runs each strategy on it in turn
(``run_strategies``, which the tests point at their session stack instead).

A strategy is a celebrity threshold of the served fan-out, and the threshold
acts on data: an author is served by pull while their account is flagged
``celebrity`` in the graph and ``celeb:ready`` in Redis, and a reader's home
read merges the outboxes in their ``celebs:`` set. Restarting the stack with
another ``CELEBRITY_THRESHOLD`` per strategy would cost about a minute each
here, so one stack serves every strategy: before each, the run's users'
timelines are emptied and the celebrity state the fan-out's promotion would
leave at that threshold is written in bulk (flags, ``celeb:ready``, the
followers' ``celebs:`` sets; the outboxes start empty, as every inbox does).
No follows happen during a trace, so the stack's own threshold setting is
never consulted. Every active user is marked active (``finish_rebuild`` of an
empty timeline, what a first read leaves for a user with nothing to see yet),
so fan-out keeps their inboxes.

Then the trace is offered open loop at ``live.rate`` requests per second
(relative times kept, so the diurnal shape stays), over HTTP with tokens
issued by the service layer (``AuthService.issue_token``). What is measured,
and where from:

* **timeline writes per post**: the entries in the run's inboxes (``ZCARD``),
  less the authors' own copies (``ZMSCORE`` of their own posts), per post;
* **delivery lag**: from a post's acknowledgement until it is in every active
  follower's inbox (``ZSCORE`` polled every ``POLL_SECONDS``), or in the
  author's outbox when they are pulled: p50 / p99 / max;
* **home-read latency** from the HTTP answers (from each request's due time);
  and, after the trace, the service time of its first home reads sent again
  one at a time (the probe), which calibrates the model's read cost;
* **outbox merges per read**: ``SCARD`` of each reader's ``celebs:`` set,
  which the read script merges;
* **timeline memory**: ``MEMORY USAGE`` of the run's inboxes, reblog hashes
  and outboxes;
* **CPU seconds** of the stack's processes (``/proc``, ``bench.cpu``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import orjson

from bench.cpu import cpu_by_role, delta
from config import Settings
from graph.driver import GraphClient
from lab.experiment import Calibration, Experiment
from lab.graphs import EdgeList
from lab.model import Outcome, sample
from lab.strategies import Strategy
from lab.trace import HOME, POST, USER, Trace
from redis_store import slots
from redis_store.client import redis_from
from redis_store.timelines import (
    TimelineStore,
    celeb_ready_key,
    celebs_key,
    member,
    outbox_key,
    reblogs_key,
    timeline_key,
)
from stack import Stack, wait_for_http

POLL_SECONDS = 0.02
CHUNK = 2_000  # keys per Redis pipeline, rows per graph transaction
MAX_OUTSTANDING = 64
WARM_UP_READS = 200
PROBE_READS = 60
CONCURRENCY = 32  # calls at once to the stores (a Redis client's pool is bounded)
STACK_ATTEMPTS = 3
PROMOTION_PATIENCE = 180.0  # seconds for the fan-out workers to carry out an import's promotions
SCOPES = ["read", "write", "follow"]
LAB_ENV = {
    # Authors in a trace post far more than people do; the rate limits are not what is measured.
    "POST_RATE_LIMIT": "1000000",
    "SIGNUP_RATE_LIMIT": "1000000",
    "LOGIN_RATE_LIMIT": "1000000",
}


@dataclass
class Samples:
    """Per-request figures of one live strategy, for calibration: each read's merges, each post's writes."""

    read_ms: list[float] = field(default_factory=list)
    read_merges: list[int] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    lag_writes: list[int] = field(default_factory=list)
    probe_ms: list[float] = field(default_factory=list)  # home reads one at a time after the trace: service time
    probe_merges: list[int] = field(default_factory=list)
    user_read_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    errors: int = 0
    undelivered: int = 0


@dataclass
class Population:
    """The run's graph in the stack: account ids by dense id, tokens of the users the trace acts as."""

    account_ids: np.ndarray  # int64 by dense id
    src: np.ndarray
    dst: np.ndarray
    tokens: dict[int, str]  # dense id -> bearer token


class LiveRun:
    """Runs strategies of one trace on one running stack (``settings``), a population already imported."""

    def __init__(self, settings: Settings, population: Population, trace: Trace, rate: float, settle: float) -> None:
        self.settings = settings
        self.population = population
        self.trace = trace
        self.rate = rate
        self.settle = settle
        self.redis = redis_from(settings)
        self.timelines = TimelineStore.from_settings(settings, self.redis)
        self.followers = np.bincount(population.dst, minlength=len(population.account_ids))
        order = np.argsort(population.dst, kind="stable")  # followers of each author, contiguous
        self.follower_of = population.src[order]
        self.follower_start = np.concatenate([[0], np.cumsum(self.followers)])
        self.samples: dict[str, Samples] = {}

    async def close(self) -> None:
        await self.redis.aclose()

    def ids(self, dense: Iterable[int]) -> list[int]:
        return [int(self.population.account_ids[d]) for d in dense]

    def active_followers(self, author: int) -> np.ndarray:
        f = self.follower_of[self.follower_start[author] : self.follower_start[author + 1]]
        return f[self.trace.active[f]]

    # -- state --------------------------------------------------------------

    async def activate(self) -> None:
        """Every active user's (empty) inbox counts as kept, as after their first read."""
        active = self.ids(np.flatnonzero(self.trace.active))
        for start in range(0, len(active), CONCURRENCY):
            await asyncio.gather(*(self.timelines.finish_rebuild(u, []) for u in active[start : start + CONCURRENCY]))

    async def reset(self) -> None:
        """The run's users' timelines, outboxes and celebrity state emptied (nobody else's)."""
        users = self.ids(range(len(self.population.account_ids)))
        for start in range(0, len(users), CHUNK):
            keys = []
            for u in users[start : start + CHUNK]:
                keys += (timeline_key(u), reblogs_key(u), outbox_key(u), celebs_key(u), celeb_ready_key(u))
            await self._unlink(keys)

    async def _unlink(self, keys: list[str]) -> None:
        """UNLINK keys of many users: one command on a single server, one per slot on a Redis Cluster (sent in one
        pipeline), which refuses a command whose keys span slots."""
        groups = slots.by_slot(self.redis, keys, lambda key: key)
        if len(groups) <= 1:
            for group in groups:
                await self.redis.unlink(*group)
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.unlink(*group)
            await pipe.execute()

    async def apply(self, strategy: Strategy, graph: GraphClient) -> np.ndarray:
        """Write the celebrity state promotion leaves at the strategy's threshold; returns who is pulled."""
        celebrity = strategy.celebrities(self.followers)
        ids = self.population.account_ids
        rows = [{"id": int(ids[d]), "c": bool(celebrity[d])} for d in range(len(ids))]
        for start in range(0, len(rows), CHUNK):
            await graph.write(
                "UNWIND $rows AS r MATCH (a:Account {id: r.id}) SET a.celebrity = r.c", rows=rows[start : start + CHUNK]
            )
        pulled_edges = celebrity[self.population.dst]
        readers = self.population.src[pulled_edges]
        authors = self.population.dst[pulled_edges]
        order = np.argsort(readers, kind="stable")
        readers, authors = readers[order], authors[order]
        bounds = np.flatnonzero(np.diff(readers)) + 1
        async with self.redis.pipeline(transaction=False) as pipe:
            for n, d in enumerate(np.flatnonzero(celebrity)):
                pipe.set(celeb_ready_key(int(ids[d])), 1)
                if n % CHUNK == CHUNK - 1:
                    await pipe.execute()
            await pipe.execute()
            for n, (group_readers, group_authors) in enumerate(
                zip(np.split(readers, bounds), np.split(authors, bounds), strict=True)
            ):
                if len(group_readers):
                    pipe.sadd(celebs_key(int(ids[group_readers[0]])), *(int(ids[a]) for a in group_authors))
                if n % CHUNK == CHUNK - 1:
                    await pipe.execute()
            await pipe.execute()
        return celebrity

    # -- the run ------------------------------------------------------------

    async def run_strategy(self, strategy: Strategy, graph: GraphClient) -> Outcome:
        started = time.perf_counter()
        await self.reset()
        await self.activate()  # first: marking a user active also empties their celebs: set, as a rebuild does
        celebrity = await self.apply(strategy, graph)
        samples = self.samples[strategy.name] = Samples()
        merges_of = await self._merges_of_readers()
        cpu_before = cpu_by_role()
        posted = await self._drive(np.arange(len(self.trace)), samples, celebrity, merges_of)
        cpu_seconds = sum(delta(cpu_before, cpu_by_role()).values())
        samples.probe_ms, samples.probe_merges = await self._probe(merges_of)
        counted = await self._count(posted)
        reads = np.asarray(samples.read_ms)
        return Outcome(
            strategy=strategy.name,
            mode="live",
            posts=int((self.trace.kind == POST).sum()),
            home_reads=int((self.trace.kind == HOME).sum()),
            user_reads=int((self.trace.kind == USER).sum()),
            writes=counted["writes"],
            outbox_appends=counted["outbox_entries"],
            merges=int(sum(samples.read_merges)),
            timeline_entries=counted["entries"],
            timeline_keys=counted["keys"],
            timeline_bytes=counted["bytes"],
            read_ms=sample(reads),
            lag_ms=sample(np.asarray(samples.lag_ms)),
            cpu_seconds=cpu_seconds,
            seconds=time.perf_counter() - started,
            errors=samples.errors,
            undelivered=samples.undelivered,
        )

    async def _merges_of_readers(self) -> dict[int, int]:
        """Outboxes each reader's home read merges: the size of their ``celebs:`` set, from Redis."""
        readers = sorted({int(u) for u in self.trace.home_readers})
        async with self.redis.pipeline(transaction=False) as pipe:
            for u in self.ids(readers):
                pipe.scard(celebs_key(u))
            sizes = await pipe.execute()
        return dict(zip(readers, (int(s) for s in sizes), strict=True))

    async def warm_up(self) -> None:
        """The trace's first reads, unmeasured: the first strategy should not pay for cold caches and processes."""
        reads = np.flatnonzero(self.trace.kind != POST)[:WARM_UP_READS]
        nobody = np.zeros(len(self.population.account_ids), dtype=bool)
        await self._drive(reads, Samples(), nobody, await self._merges_of_readers())

    async def _probe(self, merges_of: dict[int, int]) -> tuple[list[float], list[int]]:
        """The trace's first home reads again, one at a time, once the trace is done: each read's service time
        without the queueing an open loop adds (the read cost the model is calibrated to), and its merges."""
        readers = [int(u) for u in self.trace.home_readers[:PROBE_READS]]
        times, merges = [], []
        async with aiohttp.ClientSession(self.settings.base_url, timeout=aiohttp.ClientTimeout(total=60)) as session:
            for user in readers:
                headers = {"Authorization": f"Bearer {self.population.tokens[user]}"}
                sent = time.perf_counter()
                async with session.get("/api/v1/timelines/home", params={"limit": "20"}, headers=headers) as answer:
                    await answer.read()
                    if answer.status == 200:
                        times.append((time.perf_counter() - sent) * 1000)
                        merges.append(merges_of[user])
        return times, merges

    async def _drive(
        self, ops: np.ndarray, samples: Samples, celebrity: np.ndarray, merges_of: dict[int, int]
    ) -> list[tuple[int, int]]:
        """Offer the trace's requests ``ops`` (indexes, in time order) open loop, paced as the trace is at
        ``rate``; returns (author dense id, status id) of every acknowledged post."""
        trace, tokens, ids = self.trace, self.population.tokens, self.population.account_ids
        scale = len(trace) / self.rate / max(float(trace.t[-1] - trace.t[0]), 1e-9)
        posted: list[tuple[int, int]] = []
        pending: dict[int, tuple[float, list[str], str, int]] = {}  # status -> (ack, keys left, member, writes)
        gate = asyncio.Semaphore(MAX_OUTSTANDING)
        done = asyncio.Event()

        async def request(session: aiohttp.ClientSession, i: int, due: float) -> None:
            kind, user = int(trace.kind[i]), int(trace.user[i])
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            try:
                if kind == POST:
                    call = session.post("/api/v1/statuses", data={"status": f"lab post {i}"}, headers=headers)
                elif kind == HOME:
                    call = session.get("/api/v1/timelines/home", params={"limit": "20"}, headers=headers)
                else:
                    call = session.get(
                        f"/api/v1/accounts/{int(ids[trace.target[i]])}/statuses",
                        params={"limit": "20"},
                        headers=headers,
                    )
                async with call as response:
                    body = await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            answered = time.perf_counter()
            if not ok:
                samples.errors += 1
                return
            ms = (answered - due) * 1000
            if kind == HOME:
                samples.read_ms.append(ms)
                samples.read_merges.append(merges_of[user])
            elif kind == USER:
                samples.user_read_ms.append(ms)
            else:
                samples.post_ms.append(ms)
                status_id = int(orjson.loads(body)["id"])
                posted.append((user, status_id))
                if celebrity[user]:
                    keys, writes = [outbox_key(int(ids[user]))], 0
                else:
                    keys = [timeline_key(int(ids[f])) for f in self.active_followers(user)]
                    writes = len(keys)
                if keys:
                    pending[status_id] = (answered, keys, member(status_id), writes)

        async def watch() -> None:
            """Poll the stores for pending posts until every one reached every target (or settle ran out)."""
            deadline = None
            while True:
                finishing = done.is_set()  # read once: it may be set while this pass awaits Redis
                if finishing and deadline is None:
                    deadline = time.perf_counter() + self.settle
                if pending:
                    items = list(pending.items())
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for _, (_, keys, m, _) in items:
                            for key in keys:
                                pipe.zscore(key, m)
                        found = await pipe.execute()
                    now, n = time.perf_counter(), 0
                    for status_id, (acked, keys, m, writes) in items:
                        left = [key for key, score in zip(keys, found[n : n + len(keys)], strict=True) if score is None]
                        n += len(keys)
                        if left:
                            pending[status_id] = (acked, left, m, writes)
                        else:
                            del pending[status_id]
                            samples.lag_ms.append((now - acked) * 1000)
                            samples.lag_writes.append(writes)
                if finishing and (not pending or time.perf_counter() > deadline):
                    samples.undelivered = len(pending)
                    return
                await asyncio.sleep(POLL_SECONDS)

        connector = aiohttp.TCPConnector(limit=MAX_OUTSTANDING)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(self.settings.base_url, connector=connector, timeout=timeout) as session:
            watcher = asyncio.ensure_future(watch())
            tasks = []
            start = time.perf_counter() + 0.1
            for i in ops:
                due = start + (float(trace.t[i]) - float(trace.t[ops[0]])) * scale
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                await gate.acquire()
                task = asyncio.ensure_future(request(session, i, due))
                task.add_done_callback(lambda _: gate.release())
                tasks.append(task)
            await asyncio.gather(*tasks)
            done.set()
            await watcher
        return posted

    async def _count(self, posted: list[tuple[int, int]]) -> dict[str, float]:
        """Entries, keys and memory of the run's timelines, and fan-out writes, all read from Redis."""
        ids = self.population.account_ids
        users = [int(u) for u in ids]
        own: dict[int, list[str]] = {}
        for author, status_id in posted:
            own.setdefault(int(ids[author]), []).append(member(status_id))
        sizes: list[int] = []
        outbox_entries = 0
        keys_present: list[str] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(users), CHUNK):
                chunk = users[start : start + CHUNK]
                for u in chunk:
                    pipe.zcard(timeline_key(u))
                    pipe.zcard(outbox_key(u))
                    pipe.exists(reblogs_key(u))
                answers = await pipe.execute()
                for n, u in enumerate(chunk):
                    inbox, outbox, rb = answers[3 * n : 3 * n + 3]
                    sizes.append(int(inbox))
                    outbox_entries += int(outbox)
                    keys_present += [k for k, size in ((timeline_key(u), inbox), (outbox_key(u), outbox)) if size]
                    if rb:
                        keys_present.append(reblogs_key(u))
            for author, members in own.items():
                pipe.zmscore(timeline_key(author), members)
            own_present = sum(sum(score is not None for score in scores) for scores in await pipe.execute())
            used = 0
            for start in range(0, len(keys_present), CHUNK):
                for key in keys_present[start : start + CHUNK]:
                    pipe.memory_usage(key, samples=0)
                used += sum(int(b or 0) for b in await pipe.execute())
        inbox_entries = sum(sizes)
        return {
            "writes": inbox_entries - own_present,
            "outbox_entries": outbox_entries,
            "entries": inbox_entries + outbox_entries,
            "keys": len(keys_present),
            "bytes": used,
        }


# -- calibration -----------------------------------------------------------------------


def _fit_line(x: list[float], y: list[float], default_slope: float) -> tuple[float, float]:
    """Least squares ``y = a + b·x`` with ``b ≥ 0``; the default slope where x does not vary."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) == 0:
        return float("nan"), default_slope
    if np.ptp(xs) == 0:
        return float(ys.mean() - default_slope * xs.mean()), default_slope
    slope = max(0.0, float(np.polyfit(xs, ys, 1)[0]))
    return float(ys.mean() - slope * xs.mean()), slope


def _nonnegative_fit(rows: list[list[float]], totals: list[float]) -> list[float]:
    """Least squares ``totals ≈ rows · costs`` with every cost ≥ 0: the best fit over the subsets of costs
    (a cost left out is 0). Few strategies, or columns that move together (entries and keys of small
    timelines), leave a plain fit negative; one unit cost that explains the totals is then the answer."""
    a, b = np.asarray(rows, dtype=float), np.asarray(totals, dtype=float)
    best, best_error = [0.0] * a.shape[1], float("inf")
    for used in itertools.chain.from_iterable(itertools.combinations(range(a.shape[1]), k) for k in (1, 2)):
        if len(used) > len(b) or not a[:, list(used)].any():
            continue
        fitted = np.linalg.lstsq(a[:, list(used)], b, rcond=None)[0]
        error = float(np.sum((a[:, list(used)] @ fitted - b) ** 2))
        if (fitted >= 0).all() and error < best_error:
            best, best_error = [0.0] * a.shape[1], error
            for column, cost in zip(used, fitted, strict=True):
                best[column] = float(cost)
    return best


def read_cost(samples: Samples) -> tuple[float, float]:
    """A strategy's home-read cost and merges per read: the median of its probe reads (``LiveRun._probe``) and
    their mean merges, else the trace's reads' (on a shared machine a mean latency is mostly its spikes)."""
    reads, merges = (
        (samples.probe_ms, samples.probe_merges) if samples.probe_ms else (samples.read_ms, samples.read_merges)
    )
    return (float(np.median(reads)), float(np.mean(merges))) if reads else (float("nan"), 0.0)


def calibrate(samples: dict[str, Samples], outcomes: list[Outcome], base: Calibration) -> Calibration:
    """Unit costs fitted to the live strategies' figures.

    Read cost: a line through each strategy's probe reads (mean merges, median latency). Delivery lag: a line
    through every post's (inboxes written, lag). Memory: bytes per entry and per key, least squares over the
    strategies. CPU: per request and per write, least squares over the strategies (per request only when
    the strategies cannot tell the two apart). Post and profile-read costs: their medians.
    """
    reads = [read_cost(samples[o.strategy]) for o in outcomes if o.strategy in samples]
    reads = [(ms, merges) for ms, merges in reads if not np.isnan(ms)]
    read_ms, merge_ms = _fit_line([m for _, m in reads], [ms for ms, _ in reads], base.merge_ms)
    values = base.model_dump()
    values.update(read_ms=read_ms, merge_ms=merge_ms)
    lag_writes = [w for s in samples.values() for w in s.lag_writes]
    lags = [lag for s in samples.values() for lag in s.lag_ms]
    if lags:
        values["lag_ms"], values["lag_per_write_ms"] = _fit_line(lag_writes, lags, base.lag_per_write_ms)
    user_reads = [ms for s in samples.values() for ms in s.user_read_ms]
    posts = [ms for s in samples.values() for ms in s.post_ms]
    if user_reads:
        values["user_read_ms"] = float(np.median(user_reads))
    if posts:
        values["post_ms"] = float(np.median(posts))
    with_memory = [o for o in outcomes if o.timeline_keys]
    if with_memory:
        per_entry, per_key = _nonnegative_fit(
            [[o.timeline_entries, o.timeline_keys] for o in with_memory], [o.timeline_bytes for o in with_memory]
        )
        values.update(bytes_per_entry=per_entry, bytes_per_key=per_key)
    if outcomes:
        per_op, per_write = _nonnegative_fit(
            [[o.ops, o.writes] for o in outcomes], [o.cpu_seconds * 1000 for o in outcomes]
        )
        values.update(cpu_per_op_ms=per_op, cpu_per_write_ms=per_write, cpu_per_merge_ms=0.0)
    return Calibration(**values)


def check_calibration(
    samples: dict[str, Samples], live: list[Outcome], model_of: Callable[[str], Outcome], costs: Calibration
) -> list[dict[str, float | str]]:
    """Model against live per strategy, on writes per post and home-read cost.

    Writes are counted by the model from the graph and the trace and read by live mode from Redis: they
    agree unless the model's rules and the served code's differ. The read cost is one line (two unit
    costs) fitted to every live strategy, so a gap says how far each strategy is from it: whether merges
    explain the differences between strategies' reads, or noise does. ``model_of(strategy)`` runs the model.
    """
    rows = []
    for outcome in live:
        modelled = model_of(outcome.strategy)
        live_read, merges = read_cost(samples[outcome.strategy])
        model_read = costs.read_ms + costs.merge_ms * merges
        rows.append(
            {
                "strategy": outcome.strategy,
                "live_writes_per_post": round(outcome.writes_per_post, 3),
                "model_writes_per_post": round(modelled.writes_per_post, 3),
                "writes_gap": round(_gap(modelled.writes_per_post, outcome.writes_per_post), 4),
                "live_read_ms_p50": round(live_read, 3),
                "model_read_ms": round(model_read, 3),
                "read_gap": round(_gap(model_read, live_read), 4),
            }
        )
    return rows


def _gap(model: float, live: float) -> float:
    if live == 0:
        return 0.0 if model == 0 else float("inf")
    return abs(model - live) / abs(live)


# -- a population in a stack ---------------------------------------------------------


async def issue_tokens(settings: Settings, account_ids: np.ndarray, users: Iterable[int]) -> dict[int, str]:
    """Bearer tokens for the users the trace acts as, issued by the service layer (as the OAuth routes do)."""
    from graph.accounts import AccountGraph
    from redis_store.client import claim_id_generator
    from services.auth import AuthService
    from services.passwords import Passwords

    redis = redis_from(settings)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    try:
        async with aiohttp.ClientSession(settings.base_url) as http:
            form = {
                "client_name": "raygram lab",
                "scopes": " ".join(SCOPES),
                "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
            }
            async with http.post("/api/v1/apps", data=form) as response:
                response.raise_for_status()
                client_id = (await response.json())["client_id"]
        accounts = AccountGraph(graph)
        app = await accounts.get_app_by_client_id(client_id)
        ids = await claim_id_generator(redis)
        auth = AuthService(settings, accounts, redis, ids, Passwords(settings))
        users = sorted({int(u) for u in users})
        tokens: dict[int, str] = {}
        for start in range(0, len(users), CONCURRENCY):
            chunk = users[start : start + CONCURRENCY]
            issued = await asyncio.gather(*(auth.issue_token(app, int(account_ids[u]), SCOPES) for u in chunk))
            tokens.update({u: t["access_token"] for u, t in zip(chunk, issued, strict=True)})
        await ids.release()
        return tokens
    finally:
        await graph.close()
        await redis.aclose()


async def run_strategies(
    settings: Settings, population: Population, trace: Trace, strategies: list[Strategy], rate: float, settle: float
) -> tuple[list[Outcome], dict[str, Samples]]:
    """Each strategy in turn on a running stack whose graph holds ``population``."""
    run = LiveRun(settings, population, trace, rate, settle)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    try:
        await run.warm_up()
        outcomes = []
        for strategy in strategies:
            outcome = await run.run_strategy(strategy, graph)
            print(
                f"  live {strategy.name}: {outcome.writes_per_post:.2f} writes/post, {outcome.merges_per_read:.2f} "
                f"merges/read, {outcome.errors} errors, {outcome.undelivered} undelivered, {outcome.seconds:.1f}s",
                flush=True,
            )
            outcomes.append(outcome)
        return outcomes, run.samples
    finally:
        await graph.close()
        await run.close()


async def import_population(settings: Settings, edges: EdgeList, prefix: str) -> np.ndarray:
    """The graph into the stack through ``lab.importer``; returns account ids by dense id.

    Returns once the promotions and demotions the import emitted (at the stack's own threshold) are carried
    out, so that no fan-out worker changes celebrity state under a strategy afterwards.
    """
    from lab.importer import GraphImport
    from redis_store.client import claim_id_generator

    redis = redis_from(settings)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    ids = await claim_id_generator(redis)
    try:
        report = await GraphImport(settings, graph, redis, ids).run(edges, prefix)
        print(f"  imported {report.follows:,} follows ({report.follows_per_second:,.0f}/s)", flush=True)
        keys = [f"{prefix}{int(i)}".lower() for i in edges.ids]
        found: dict[str, int] = {}
        for start in range(0, len(keys), CHUNK):
            rows = await graph.read(
                "UNWIND $keys AS k MATCH (a:Account {username_key: k}) RETURN k, a.id AS id",
                keys=keys[start : start + CHUNK],
            )
            found.update({row["k"]: row["id"] for row in rows})
        deadline = time.monotonic() + PROMOTION_PATIENCE
        while True:
            async with redis.pipeline(transaction=False) as pipe:
                for account_id in (*report.celebrities, *report.demoted):
                    pipe.exists(celeb_ready_key(account_id))
                ready = await pipe.execute()
            promoted = ready[: len(report.celebrities)]
            if all(promoted) and not any(ready[len(report.celebrities) :]):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the import's promotions were not carried out within {PROMOTION_PATIENCE:.0f}s")
            await asyncio.sleep(0.2)
        return np.array([found[k] for k in keys], dtype=np.int64)
    finally:
        await ids.release()
        await graph.close()
        await redis.aclose()


def start_stack(state_dir: Path, env: dict[str, str], attempts: int = STACK_ATTEMPTS) -> Stack:
    """An isolated stack, up and answering. On a loaded machine Ray's node or Serve's proxy can time out
    while starting; then what started is stopped and the start tried again, in a fresh state folder."""
    for attempt in range(1, attempts + 1):
        stack = Stack.isolated(state_dir / f"stack-{attempt}", "lab", env)
        try:
            print("live: starting an isolated stack", flush=True)
            stack.start_services()
            stack.start_ray(dashboard=False)
            stack.deploy()
            wait_for_http(f"{stack.settings.base_url}/health")
            return stack
        except Exception as exc:
            stack.stop()
            import ray

            ray.shutdown()  # a ray.init that failed half-way leaves its node to this
            if attempt == attempts:
                raise
            print(f"live: the stack did not start ({type(exc).__name__}); trying again", flush=True)
    raise AssertionError("unreachable")


def run(
    experiment: Experiment, edges: EdgeList, trace: Trace, state_dir: Path
) -> tuple[list[Outcome], dict[str, Samples]]:
    """Live mode end to end on a stack of its own, which is stopped however this ends.

    The stack's celebrity threshold is above every follower count (push), so the import promotes nobody;
    each strategy then writes its own celebrity state (module docstring).
    """
    strategies = [Strategy.parse(name) for name in experiment.strategies.live]
    above_all = str(int(np.bincount(edges.dst, minlength=edges.nodes).max(initial=0)) + 1)
    env = LAB_ENV | {
        "TIMELINE_MAX": str(experiment.live.timeline_max),
        "CELEBRITY_THRESHOLD": above_all,
        "CELEBRITY_DEMOTE_BELOW": above_all,
    }
    stack = start_stack(state_dir, env)
    try:
        print("live: importing the graph", flush=True)
        account_ids = asyncio.run(import_population(stack.settings, edges, "lab_"))
        tokens = asyncio.run(issue_tokens(stack.settings, account_ids, trace.user))
        population = Population(account_ids, edges.src, edges.dst, tokens)
        return asyncio.run(
            run_strategies(
                stack.settings, population, trace, strategies, experiment.live.rate, experiment.live.settle_seconds
            )
        )
    finally:
        stack.stop()
