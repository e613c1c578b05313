"""The chaos suite (``make chaos``, docs/reliability.md): kill each component under load and count what was lost.

A stack of its own (free loopback ports, a temporary state folder) is
seeded with a generated population (``bench.load``: a power-law follow
graph with a few celebrities, photos on a third of the posts) and driven by
a constant open-loop mix. While that load runs, each component is killed
once, from outside, the way a crash kills it:

* an inbox actor, a fan-out worker and the notifier: ``kill -9`` of the
  actor's worker process (its pid asked of the actor itself, its command
  line checked); Ray restarts them (``max_restarts=-1``);
* a Serve replica: ``kill -9`` of its process; Serve starts another;
* Redis: ``kill -9``, then started again the way the stack starts it, on the
  same data folder (the append-only file is replayed);
* the graph server: ``kill -9``, then started again the same way.

Each kill waits (briefly) for work to be in flight, and the table says what
was: requests outstanding, and for the stream consumers the events pending
on the very consumer that was killed. For each fault the suite reports
acknowledged writes lost (checked against the client's own log through the
API and the graph; the goal is 0), the time until every sampled home feed
is exactly what the graph says it should be (polled from the moment the
component answers again, so the checker's reads add to the load of the
window), and the error rate and p99 of the requests due from the kill until
the component was back (plus a few seconds), next to the p99 of the steady
seconds before it.

The table is printed and written, with details, to
``.raygram/chaos/<time>/results.txt`` (plus ``acks.jsonl``, the client's
log of acknowledged and unacknowledged writes, and ``requests.jsonl``, every
request with its due time, latency and status). A finding is reported, not
hidden: the suite never retries a lost write or nudges a stuck consumer. Run
one fault while working on it: ``python -m bench.chaos --faults redis``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import ray
import redis.asyncio as aioredis

from actors.registry import NOTIFIER, fanout_name, host_name, inbox_name, shard_of
from bench.load import (
    AckLog,
    Checker,
    Convergence,
    FeedDiff,
    Losses,
    Mix,
    OpenLoop,
    PopulationPlan,
    PopulationSpec,
    Summary,
    by_kind,
    photos_needed,
    plan_population,
    plan_schedule,
    print_table,
    seed_population,
    status_name,
    summarize,
    upload_photos,
)
from graph.driver import wait_for_graph
from graph.server import start_graph_server
from launcher import ManagedProcess
from redis_store.client import redis_from
from redis_store.events import STREAM
from redis_store.server import start_redis_server
from stack import Stack, wait_for_http

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FAULTS: dict[str, str] = {
    "inbox": "inbox actor",
    "fanout": "fan-out worker",
    "notifier": "notifier",
    "replica": "Serve replica",
    "redis": "Redis",
    "graph": "graph server",
}
CHAOS_ENV = {
    # Cheap password hashing: sign-up is set-up here, not what is measured.
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "8192",
    "ARGON2_PARALLELISM": "1",
    "SIGNUP_RATE_LIMIT": "100000",
    # The mix's hot users post, like and follow more in minutes than a person does in hours.
    "POST_RATE_LIMIT": "1000000",
    "FAVOURITE_RATE_LIMIT": "1000000",
    "FOLLOW_RATE_LIMIT": "1000000",
}
ARM_PATIENCE = 15.0  # seconds to wait for work in flight before killing anyway (and saying so)


@dataclass(frozen=True)
class ChaosConfig:
    """The run's shape; the defaults keep ``make chaos`` near ten minutes on two cores."""

    users: int = 600
    celebrities: int = 3
    rate: float = 30.0  # offered requests per second, open loop
    warmup: float = 20.0  # seconds of load before the first fault (users become active)
    steady: float = 6.0  # seconds of undisturbed load before each kill (the reference p99)
    after: float = 5.0  # seconds after the component is back that still count as the fault window
    converge_patience: float = 120.0  # seconds after recovery to wait for exact feeds
    redis_down: float = 3.0  # seconds Redis stays dead before it is started again
    sample: int = 150  # active users whose feeds each poll compares
    budget: float = 1_200.0  # seconds of planned schedule (the run stops it when the faults are done)
    photo_seconds: float = 480.0  # photos are uploaded for this much of it; later photo posts go without
    faults: tuple[str, ...] = tuple(FAULTS)
    seed: int = 1


@dataclass
class Kill:
    """What a kill did: whom (pid), when, and the evidence that work was in flight."""

    target: str
    pid: int
    at: float
    in_flight: str
    in_flight_seen: bool


@dataclass
class Outcome:
    """One fault's row: the kill, when the component was back, the window's figures, feeds and losses."""

    fault: str
    kill: Kill
    recovered_at: float
    window: Summary
    steady: Summary
    convergence: Convergence
    losses: Losses
    earlier: Losses  # writes acknowledged before this fault's window, re-checked in the graph after it

    @property
    def converge_seconds(self) -> float | None:
        c = self.convergence.converged_at
        return None if c is None else c - self.kill.at

    @property
    def lost(self) -> int:
        return self.losses.lost + self.earlier.lost


# -- finding and killing processes ---------------------------------------------------


def _own_process(actor: object) -> tuple[int, str]:
    return os.getpid(), type(actor).__name__


async def actor_process(handle: ray.actor.ActorHandle) -> tuple[int, str]:
    """(pid, class name) of the process an actor runs in, asked of the actor itself.

    Ray titles an actor's process ``ray::<ClassName>``: the kill checks that
    title, so a pid reused by something else is never killed.
    """
    return await asyncio.wait_for(handle.__ray_call__.remote(_own_process), 60)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill9(pid: int, *expect: str) -> None:
    """SIGKILL ``pid``, after checking its command line shows one of ``expect`` (never a reused pid)."""
    cmdline = command_line(pid)
    if not any(e in cmdline for e in expect):
        raise RuntimeError(f"pid {pid} is not the expected {expect} process: {cmdline[:200]!r}")
    os.kill(pid, signal.SIGKILL)


def reap(pid: int, patience: float = 10.0) -> None:
    """Wait for a killed child of ours to be gone (collecting it, so it does not linger as a zombie)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child, or already collected: gone once /proc says so
            if not Path(f"/proc/{pid}").exists():
                return
        else:
            if done == pid:
                return
        time.sleep(0.05)
    raise RuntimeError(f"pid {pid} did not die after SIGKILL")


def managed(stack: Stack, prefix: str) -> ManagedProcess:
    for proc in stack.started:
        if proc.name.startswith(prefix):
            return proc
    raise RuntimeError(f"this stack did not start a {prefix!r} process (an external one cannot be killed here)")


def replace_managed(stack: Stack, old: ManagedProcess, new: ManagedProcess) -> None:
    """Record the restarted service where the old one was, so that ``stack.stop`` stops the new one."""
    stack.started[stack.started.index(old)] = new


class Injector:
    """Kills components of one stack while the open loop runs, and tells when each is back."""

    def __init__(self, stack: Stack, loop: OpenLoop, redis: aioredis.Redis, redis_down: float) -> None:
        self.stack = stack
        self.settings = stack.settings
        self.loop = loop
        self.redis = redis
        self.redis_down = redis_down

    def _host(self, name: str) -> tuple[str, ray.actor.ActorHandle]:
        """The actor hosting the shard or consumer ``name`` (one process may host several): (its name, handle)."""
        host = host_name(name, self.settings)
        return host, ray.get_actor(host, namespace=self.settings.ray_namespace)

    async def _pending(self, group: str) -> dict[str, int]:
        """Consumer name -> events it took and has not acked (empty when Redis cannot say)."""
        try:
            info = await self.redis.xpending(STREAM, group)
        except Exception:
            return {}
        return {c["name"]: int(c["pending"]) for c in info.get("consumers") or [] if int(c["pending"])}

    async def _outstanding(self, patience: float = 5.0) -> int:
        """Requests in flight now, waiting up to ``patience`` seconds for there to be some."""
        for _ in range(int(patience / 0.005)):
            if self.loop.outstanding:
                break
            await asyncio.sleep(0.005)
        return self.loop.outstanding

    async def _kill_consumer(self, group: str, names: list[str]) -> tuple[Kill, str]:
        """Kill the host of the consumer of ``group`` seen holding pending events (of the first of ``names`` if
        none is seen within ``ARM_PATIENCE``); returns the kill and the host's actor name."""
        processes = {name: await actor_process(self._host(name)[1]) for name in names}
        deadline = time.monotonic() + ARM_PATIENCE
        victim, seen = names[0], 0
        while time.monotonic() < deadline:
            pending = {n: c for n, c in (await self._pending(group)).items() if n in processes}
            if pending:
                victim, seen = max(pending.items(), key=lambda item: item[1])
                break
            await asyncio.sleep(0.002)
        pid, cls = processes[victim]
        host = host_name(victim, self.settings)
        outstanding = self.loop.outstanding
        at = time.time()
        kill9(pid, f"ray::{cls}")
        left = (await self._pending(group)).get(victim, 0)
        evidence = (
            f"{seen} {group} events pending on {victim}, {left} still pending after the kill; {outstanding} requests"
            if seen
            else f"no {group} event seen pending in {ARM_PATIENCE:.0f}s; {outstanding} requests"
        )
        return Kill(f"{host} (pid {pid})", pid, at, evidence, bool(seen)), victim

    async def _actor_back(self, name: str, old_pid: int) -> float:
        """When the host of ``name`` answers again, from a new process."""
        while True:
            try:
                if (await actor_process(self._host(name)[1]))[0] != old_pid:
                    return time.time()
            except Exception:
                pass
            await asyncio.sleep(0.1)

    # -- the faults ------------------------------------------------------------------

    async def inbox(self) -> tuple[Kill, Callable[[], Awaitable[float]]]:
        """The host of the inbox shard holding the most active users, killed while a fan-out is pending."""
        shards = Counter(
            shard_of(self.loop.population.members[u].id, self.settings.inbox_shards)
            for u in self.loop.world.active_since
        )
        name = inbox_name(shards.most_common(1)[0][0] if shards else 0)
        host, handle = self._host(name)
        pid, cls = await actor_process(handle)
        deadline = time.monotonic() + ARM_PATIENCE
        seen = 0
        while time.monotonic() < deadline and not seen:
            seen = sum((await self._pending("fanout")).values())
            if not seen:
                await asyncio.sleep(0.002)
        outstanding = self.loop.outstanding
        at = time.time()
        kill9(pid, f"ray::{cls}")
        evidence = (
            f"{seen} fan-out events pending (deliveries under way); {outstanding} requests"
            if seen
            else f"no fan-out seen pending in {ARM_PATIENCE:.0f}s; {outstanding} requests"
        )
        kill = Kill(f"{host} (pid {pid}; hosts {name})", pid, at, evidence, bool(seen))
        return kill, lambda: self._actor_back(name, pid)

    async def fanout(self) -> tuple[Kill, Callable[[], Awaitable[float]]]:
        kill, consumer = await self._kill_consumer(
            "fanout", [fanout_name(i) for i in range(self.settings.fanout_workers)]
        )
        return kill, lambda: self._actor_back(consumer, kill.pid)

    async def notifier(self) -> tuple[Kill, Callable[[], Awaitable[float]]]:
        kill, consumer = await self._kill_consumer("notify", [NOTIFIER])
        return kill, lambda: self._actor_back(consumer, kill.pid)

    async def _replica_pids(self) -> list[int]:
        pids = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] == "serve" and entry["name"].startswith("SERVE_REPLICA::"):
                try:
                    pids.append((await actor_process(ray.get_actor(entry["name"], namespace="serve")))[0])
                except Exception:
                    continue  # dying or being replaced
        return sorted(pids)

    async def replica(self) -> tuple[Kill, Callable[[], Awaitable[float]]]:
        pids = await self._replica_pids()
        if not pids:
            raise RuntimeError("no Serve replica found")
        outstanding = await self._outstanding()
        at = time.time()
        kill9(pids[0], "ray::ServeReplica")
        kill = Kill(f"replica (pid {pids[0]})", pids[0], at, f"{outstanding} requests", outstanding > 0)

        async def back() -> float:
            while True:
                now = await self._replica_pids()
                if len(now) >= self.settings.serve_replicas and pids[0] not in now:
                    return time.time()
                await asyncio.sleep(0.2)

        return kill, back

    async def _stream_backlog(self) -> str:
        try:
            groups = await self.redis.xinfo_groups(STREAM)
        except Exception:
            return "stream unreadable"
        return ", ".join(f"{g['name']} {g['pending']} pending/{g.get('lag') or 0} lag" for g in groups)

    async def redis_server(self) -> tuple[Kill, Callable[[], Awaitable[float]]]:
        old = managed(self.stack, "redis")
        pid = old.running_pid()
        if pid is None:
            raise RuntimeError("Redis is not running")
        backlog = await self._stream_backlog()
        outstanding = await self._outstanding()
        at = time.time()
        port = self.settings.redis_port
        kill9(pid, f"--port {port}", f"127.0.0.1:{port}")  # Valkey retitles itself "valkey-server host:port"
        await asyncio.to_thread(reap, pid)
        kill = Kill(f"redis (pid {pid})", pid, at, f"{outstanding} requests; {backlog}", outstanding > 0)

        async def back() -> float:
            await asyncio.sleep(max(0.0, at + self.redis_down - time.time()))
            new = await asyncio.to_thread(start_redis_server, self.stack.state_dir, port=self.settings.redis_port)
            replace_managed(self.stack, old, new)
            while True:
                try:
                    if await self.redis.ping():
                        return time.time()
                except Exception:
                    await asyncio.sleep(0.05)

        return kill, back

    async def graph_server(self) -> tuple[Kill, Callable[[], Awaitable[float]]]:
        s = self.settings
        old = managed(self.stack, "graph")
        pid = old.running_pid()
        if pid is None:
            raise RuntimeError("the graph server is not running")
        outstanding = await self._outstanding()
        at = time.time()
        kill9(pid, "ArcadeDBServer")
        await asyncio.to_thread(reap, pid)
        kill = Kill(f"graph (pid {pid})", pid, at, f"{outstanding} requests", outstanding > 0)

        async def back() -> float:
            new = await asyncio.to_thread(
                start_graph_server,
                self.stack.state_dir,
                bolt_port=s.graph_bolt_port,
                http_port=s.graph_http_port,
                password=s.neo4j_password,
                database=s.neo4j_database,
                heap=s.graph_heap,
            )
            replace_managed(self.stack, old, new)
            await asyncio.to_thread(wait_for_graph, s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database, 300)
            return time.time()

        return kill, back

    async def inject(self, fault: str) -> tuple[Kill, Callable[[], Awaitable[float]]]:
        methods = {
            "inbox": self.inbox,
            "fanout": self.fanout,
            "notifier": self.notifier,
            "replica": self.replica,
            "redis": self.redis_server,
            "graph": self.graph_server,
        }
        return await methods[fault]()


# -- the suite ------------------------------------------------------------------------


@dataclass
class Suite:
    """One chaos run on a running stack: seed, load, faults in turn, checks."""

    stack: Stack
    plan: PopulationPlan
    config: ChaosConfig
    out_dir: Path
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    outcomes: list[Outcome] = field(default_factory=list)
    final: Losses | None = None
    final_feeds: Convergence | None = None
    loop: OpenLoop | None = None  # kept for the report's explanations
    t0: float = 0.0  # wall time the load started; the report's times are relative to it

    async def run(self) -> list[Outcome]:
        config, settings = self.config, self.stack.settings
        ops = plan_schedule(self.plan, Mix(), config.rate, config.budget, seed=config.seed)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            started = time.perf_counter()
            population = await seed_population(self.plan, settings, http)
            self.log(
                f"  seeded {self.plan.users} users, {len(self.plan.follows)} follows, "
                f"{sum(self.plan.seeded_posts)} posts, celebrities {population.celebrity_ids} "
                f"(threshold {self.plan.celebrity_threshold}) in {time.perf_counter() - started:.0f}s"
            )
            started = time.perf_counter()
            photo_ops = [op for op in ops if op.at < config.photo_seconds]
            photos = await upload_photos(population, http, settings.base_url, photos_needed(photo_ops))
            self.log(f"  uploaded a pool of {photos} photos in {time.perf_counter() - started:.0f}s")
            acks = AckLog(self.out_dir / "acks.jsonl")
            redis = redis_from(settings)
            try:
                async with OpenLoop(settings.base_url, population, acks) as loop:
                    self.loop, self.t0 = loop, time.time()
                    checker = Checker(settings, population, acks, loop.world, http)
                    stop = asyncio.Event()
                    load = asyncio.create_task(loop.run(ops, stop))
                    try:
                        await self._faults(loop, checker, redis, load)
                        stop.set()
                        await load
                        await self._final(checker, redis)
                    finally:
                        stop.set()
                        await asyncio.gather(load, return_exceptions=True)
                        await checker.close()
                    self._report_load(loop)
                    self._save_records(loop)
            finally:
                acks.close()
                await redis.aclose()
        return self.outcomes

    async def _sleep(self, seconds: float, load: asyncio.Task) -> None:
        """Sleep while the load runs; fail fast if the load itself died."""
        await asyncio.wait({load}, timeout=seconds)
        if load.done():
            load.result()
            raise RuntimeError("the planned schedule ran out before the faults were done; raise the budget")

    async def _faults(self, loop: OpenLoop, checker: Checker, redis: aioredis.Redis, load: asyncio.Task) -> None:
        config = self.config
        injector = Injector(self.stack, loop, redis, config.redis_down)
        self.log(f"  load: {config.rate:.0f} req/s open loop, warming up for {config.warmup:.0f}s")
        await self._sleep(config.warmup, load)
        checked_until = 0.0
        for fault in config.faults:
            steady_from = time.time()
            await self._sleep(config.steady, load)
            kill, back = await injector.inject(fault)
            self.log(f"  {FAULTS[fault]}: killed {kill.target}; in flight: {kill.in_flight}")
            recovered_at = await back()
            self.log(f"    back after {recovered_at - kill.at:.1f}s")
            convergence = await checker.converge(
                recovered_at, recovered_at + config.converge_patience, sample_size=config.sample, on_poll=self._poll
            )
            await self._sleep(max(0.0, recovered_at + config.after - time.time()), load)
            await loop.settle(recovered_at + config.after)
            now = time.time()
            losses = await checker.lost_writes(checked_until, now)
            earlier = await checker.lost_writes(0.0, checked_until, through_api=False)
            checked_until = now
            outcome = Outcome(
                fault,
                kill,
                recovered_at,
                window=summarize(loop.records, kill.at, recovered_at + config.after),
                steady=summarize(loop.records, steady_from, kill.at),
                convergence=convergence,
                losses=losses,
                earlier=earlier,
            )
            self.outcomes.append(outcome)
            converged = (
                f"{outcome.converge_seconds:.1f}s after the kill"
                if outcome.converge_seconds is not None
                else f"NOT within {config.converge_patience:.0f}s ({len(convergence.last_diffs)} feeds differ)"
            )
            self.log(f"    feeds exact: {converged}; lost: {losses.describe()}; earlier writes: {earlier.describe()}")
            for line in self.explain(losses) + self.explain(earlier):
                self.log(f"      {line}")

    def _poll(self, began: float, diffs: list[FeedDiff], note: str) -> None:
        first = next((d for d in diffs if d.user >= 0), None)
        example = f"; e.g. #{first.user} missing {len(first.missing)}, extra {len(first.extra)}" if first else ""
        self.log(f"      feed poll at {self.rel(began)}: {note}{example}")

    async def _final(self, checker: Checker, redis: aioredis.Redis) -> None:
        """With the load stopped and the consumers drained: every acknowledged write, every active feed."""
        await drain(redis, patience=60.0)
        now = time.time()
        self.final = await checker.lost_writes(0.0, now + 1, patience=60.0)
        self.final_feeds = await checker.converge(now, now + 60.0, sample_size=10**9, on_poll=self._poll)
        feeds = "all exact" if self.final_feeds.converged_at else f"{len(self.final_feeds.last_diffs)} differ"
        self.log(
            f"  final check (load stopped): lost {self.final.describe()}; {self.final_feeds.sampled} feeds {feeds}"
        )

    def _save_records(self, loop: OpenLoop) -> None:
        """Every request of the run (JSON lines), for looking into a finding afterwards."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "requests.jsonl", "wb") as out:
            for r in loop.records:
                out.write(
                    orjson.dumps(
                        {
                            "seq": r.seq,
                            "kind": r.kind,
                            "user": r.user,
                            "due": r.due_wall,
                            "latency": r.latency,
                            "status": r.status,
                        }
                    )
                    + b"\n"
                )

    def _report_load(self, loop: OpenLoop) -> None:
        overall = summarize(loop.records)
        self.log(
            f"  load overall: {overall.requests} requests, {overall.achieved_rate:.1f} ok/s, "
            f"p50 {overall.p50 * 1000:.0f} ms, p99 {overall.p99 * 1000:.0f} ms, errors {overall.errors_text()}"
            + (f"; {loop.photo_pool_empty} photo posts found the pool empty" if loop.photo_pool_empty else "")
        )

    # -- the report -------------------------------------------------------------------

    def table(self) -> tuple[list[str], list[list[str]]]:
        headers = [
            "fault",
            "killed",
            "in flight",
            "back s",
            "window errors",
            "p99 window ms",
            "p99 before ms",
            "feeds exact s",
            "acked checked",
            "acked lost",
        ]
        rows = []
        for o in self.outcomes:
            checked = o.losses.checked_posts + o.losses.checked_likes + o.losses.checked_follows
            rows.append(
                [
                    FAULTS[o.fault],
                    o.kill.target,
                    "yes" if o.kill.in_flight_seen else "NOT SEEN",
                    f"{o.recovered_at - o.kill.at:.1f}",
                    f"{o.window.error_rate:.1%} of {o.window.requests}",
                    f"{o.window.p99 * 1000:.0f}",
                    f"{o.steady.p99 * 1000:.0f}",
                    f"{o.converge_seconds:.1f}" if o.converge_seconds is not None else "NEVER",
                    str(checked),
                    str(o.lost),
                ]
            )
        if self.final is not None and self.final_feeds is not None:
            f = self.final
            rows.append(
                [
                    "final (load stopped)",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "exact" if self.final_feeds.converged_at else "NOT EXACT",
                    str(f.checked_posts + f.checked_likes + f.checked_follows),
                    str(f.lost),
                ]
            )
        return headers, rows

    def details(self) -> str:
        lines = []
        for o in self.outcomes:
            lines.append(
                f"{FAULTS[o.fault]}: killed {o.kill.target} at {self.rel(o.kill.at)}, "
                f"back at {self.rel(o.recovered_at)}; in flight: {o.kill.in_flight}"
            )
            lines.append(
                f"  window {o.window.seconds:.1f}s: {o.window.requests} requests, errors {o.window.errors_text()}, "
                f"p50 {o.window.p50 * 1000:.0f} ms, p99 {o.window.p99 * 1000:.0f} ms, max {o.window.max * 1000:.0f} ms"
            )
            if self.loop is not None and o.window.errors:
                end = o.recovered_at + self.config.after
                kinds = by_kind(self.loop.records, o.kill.at, end)
                failing = ", ".join(f"{k} {v.errors_text()}" for k, v in kinds.items() if v.errors)
                lines.append(f"  errors by request kind: {failing}")
                step = max(5.0, (end - o.kill.at) / 12)
                spans = []
                t = o.kill.at
                while t < end:
                    w = summarize(self.loop.records, t, min(t + step, end))
                    spans.append(f"{self.rel(t)} {w.requests} req, {w.errors_text()}")
                    t += step
                lines.append(f"  errors over the window ({step:.0f}s steps): " + "; ".join(spans))
            lines.append(
                f"  acknowledged in this fault's span: {o.losses.checked_posts} posts "
                f"({o.losses.checked_feed_pairs} follower feeds), {o.losses.checked_likes} likes, "
                f"{o.losses.checked_follows} follows; lost: {o.losses.describe()}"
            )
            lines.append(f"  earlier writes re-checked in the graph: lost {o.earlier.describe()}")
            lines += [f"    {line}" for line in self.explain(o.losses) + self.explain(o.earlier)]
            c = o.convergence
            lines.append(
                f"  feed polls: {c.polls} ({c.poll_seconds:.1f}s the last), {c.sampled} active users sampled, "
                f"{c.uncertain} users left out (a follow of theirs never acknowledged)"
            )
            for diff in c.last_diffs[:5]:
                lines.append(
                    f"    user #{diff.user}: status {diff.status}, missing {list(diff.missing)[:5]}, "
                    f"extra {list(diff.extra)[:5]}; {self.failures_of(diff.user)}"
                )
        if self.final is not None:
            lines.append(f"final (load stopped): lost {self.final.describe()}")
            lines += [f"    {line}" for line in self.explain(self.final)]
        if self.final_feeds is not None:
            for diff in self.final_feeds.last_diffs[:10]:
                lines.append(
                    f"    final feed of user #{diff.user}: status {diff.status}, missing {list(diff.missing)[:5]}, "
                    f"extra {list(diff.extra)[:5]}; {self.failures_of(diff.user)}"
                )
        return "\n".join(lines)

    def rel(self, wall: float) -> str:
        return f"t+{wall - self.t0:.1f}s"

    def failures_of(self, user: int) -> str:
        """What went wrong for a user's own requests (a clue to why their state is off)."""
        if self.loop is None or user < 0:
            return ""
        failed = [r for r in self.loop.records if r.user == user and not r.ok]
        active = self.loop.world.active_since.get(user)
        since = f"active since {self.rel(active)}" if active else "never active"
        shown = ", ".join(f"{r.kind} {status_name(r.status)} at {self.rel(r.due_wall)}" for r in failed[:5])
        return f"{since}; failed requests: {shown or 'none'}"

    def explain(self, losses: Losses) -> list[str]:
        """One line per lost write (up to ten of each kind), with when it was acknowledged and clues."""
        out = [f"post {p} gone" for p in losses.posts_missing[:10]]
        if self.loop is not None:
            posts = {p.id: p for p in self.loop.acks.posts}
            for post_id, follower in losses.feed_missing[:10]:
                post = posts.get(post_id)
                acked = f"by #{post.author}, acknowledged at {self.rel(post.at)}" if post else ""
                out.append(
                    f"post {post_id} {acked} missing from the feed of #{follower} ({self.failures_of(follower)})"
                )
        for label, pairs in (
            ("like not favourited", losses.likes_not_favourited),
            ("like not in the graph", losses.likes_not_persisted),
            ("follow gone", losses.follows_missing),
        ):
            for pair in pairs[:10]:
                out.append(f"{label}: #{pair.user} -> {pair.other}, acknowledged at {self.rel(pair.at)}")
        return out

    def write(self, text: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "results.txt"
        path.write_text(text + "\n")
        return path


async def drain(redis: aioredis.Redis, patience: float) -> bool:
    """Wait until every consumer group has acked everything (True), or ``patience`` seconds passed."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            groups = await redis.xinfo_groups(STREAM)
            if all(not g["pending"] and not (g.get("lag") or 0) for g in groups):
                return True
        except Exception:
            pass
        await asyncio.sleep(0.5)
    return False


# -- running it --------------------------------------------------------------------------


def chaos_stack(state_dir: Path, plan: PopulationPlan) -> Stack:
    """A stack of its own on free loopback ports, with the plan's celebrity threshold."""
    return Stack.isolated(state_dir, "chaos", CHAOS_ENV | plan.stack_env())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, from {', '.join(FAULTS)}")
    parser.add_argument("--users", type=int, default=ChaosConfig.users)
    parser.add_argument("--rate", type=float, default=ChaosConfig.rate)
    parser.add_argument("--warmup", type=float, default=ChaosConfig.warmup)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default .raygram/chaos/<time>)")
    args = parser.parse_args(argv)
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise SystemExit(f"unknown fault {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    config = ChaosConfig(users=args.users, rate=args.rate, warmup=args.warmup, faults=faults)
    out_dir = args.out or PROJECT_ROOT / ".raygram" / "chaos" / time.strftime("%Y%m%d-%H%M%S")
    plan = plan_population(PopulationSpec(users=config.users, celebrities=config.celebrities, seed=config.seed))
    print(f"chaos suite: {os.cpu_count()} CPUs, Ray {ray.__version__}, faults: {', '.join(faults)}", flush=True)
    started = time.perf_counter()
    suite: Suite | None = None
    failure: BaseException | None = None
    with tempfile.TemporaryDirectory(prefix="raygram-chaos-") as state_dir:
        stack = chaos_stack(Path(state_dir), plan)
        try:  # ``stop`` also stops a half-started stack, and the restarted services: only what this run started
            stack.start_services()
            stack.start_ray(dashboard=False, num_cpus=4)
            stack.deploy()
            wait_for_http(f"{stack.settings.base_url}/health")
            print(f"  stack up in {time.perf_counter() - started:.0f}s at {stack.settings.base_url}", flush=True)
            suite = Suite(stack, plan, config, out_dir)
            asyncio.run(suite.run())
        except Exception as exc:  # report what was measured before the failure, then fail
            failure = exc
            traceback.print_exc()
        finally:
            stack.stop()
    if suite is not None:
        headers, rows = suite.table()
        text = print_table("chaos: one kill each under open-loop load", headers, rows)
        details = suite.details()
        print(details, flush=True)
        path = suite.write(f"{text}\n\n{details}" + (f"\n\nTHE RUN FAILED: {failure!r}" if failure else ""))
        print(f"\nchaos suite done in {time.perf_counter() - started:.0f}s; results in {path}", flush=True)
    if failure is not None:
        raise failure


if __name__ == "__main__":
    main()
