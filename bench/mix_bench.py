"""The mix benchmark (docs/performance.md): raygram and its bare baseline under the same open-loop mix, rate by rate.

One stack (free loopback ports, a temporary state folder, default cache
TTLs) is seeded with a generated population (``bench.load``): thousands of
users on a power-law follow graph with a few celebrities promoted by the
real path (the fan-out workers act on ``account.promoted``), a third of the
seeded posts carrying a photo. Then DeathStarBench's mix (60 % home reads,
30 % profile reads, 10 % posts, a third of them with a photo, plus likes;
no follows) is offered open loop at fixed arrival rates, readers drawn from
a Zipf over all users so that hot and cold users (and warm and cold caches)
both come up. At each rate the same schedule (same users, same order, same
times) goes to raygram (Ray Serve behind HAProxy) and to
``bench/baseline_server.py`` (bare aiohttp doing the same store work, see
its docstring for what differs), one after the other, alternating which
goes first; the event stream is drained between runs so that one side's
fan-out backlog does not eat the other's CPU. A side stops at the first rate
it does not sustain; a side that sustains not even the lowest is tried at
half and a quarter of it.

Per run it reports the achieved rate, p50, p99 and p99.9 (from each
request's due time, so queueing counts), errors, and CPU per request from
``/proc`` (``bench.cpu``): the serving processes (the replicas, HAProxy and
Serve's proxy, or the baseline process), the stores (Redis, the graph), and
everything the stack runs above what it burns at rest (the other side's
idle server left out), with the load generator's own CPU beside. The
headline is the highest offered rate each side sustains (p99 ≤ 50 ms, at
most 0.1 % errors) and their ratio. The load average at the start of every
run is printed: on a busy machine the figures are noise.

Before measuring, every user reads their home feed once through raygram
(their timelines are built, their likes loaded), so neither side meets
inactive users the other has already rebuilt; and the JSON of a few home
and profile pages is compared between the two servers.

Tables, the plot of latency against offered load (``mix-latency.png``) and
the raw figures (``mix.json``) go to ``.raygram/bench/<time>/``. Run it alone
with ``python -m bench mix`` (``--help`` for the rates, durations and
population).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import ray
import redis.asyncio as aioredis

from bench.baseline_server import DIFFERENCES
from bench.cpu import cpu_by_role, delta
from bench.load import (
    Mix,
    Op,
    OpenLoop,
    Population,
    PopulationPlan,
    PopulationSpec,
    Summary,
    by_kind,
    photos_needed,
    plan_population,
    plan_schedule,
    print_table,
    seed_population,
    summarize,
    upload_photos,
)
from bench.load.population import DISTINCT_PHOTOS, GRAPH_BATCH, bounded_gather
from bench.load.runner import AckLog
from config import Settings
from graph.driver import GraphClient
from graph.media import MediaGraph
from ids import id_to_ms
from launcher import free_port
from redis_store.client import claim_id_generator, redis_from
from redis_store.events import STREAM
from stack import Stack, wait_for_http

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_ROOT / ".raygram" / "bench"
MIX_ENV = {
    # Cheap password hashing: set-up, not what is measured.
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "8192",
    "ARGON2_PARALLELISM": "1",
    "SIGNUP_RATE_LIMIT": "100000",
    # The Zipf's hottest users post and like more in minutes than a person does in hours. Cache TTLs are
    # NOT raised: status and account records expire after their default minute, as in production.
    "POST_RATE_LIMIT": "10000000",
    "FAVOURITE_RATE_LIMIT": "10000000",
}
SERVERS = {"raygram": ("serve replica", "serve proxy", "haproxy"), "baseline": ("baseline server",)}
STORES = ("redis", "graph")
KIND_ORDER = ("home", "profile", "post", "like")
PREWARM_CONCURRENCY = 16
DRAIN_PATIENCE = 60.0  # seconds for the fan-out, persister and notifier to catch up between runs
COMPARE_USERS = 4  # users whose home and profile pages are compared between the two servers
IDLE_SECONDS = 5.0  # measuring the stack's CPU at rest
PROBES_BELOW = 2  # rates below the lowest (halving) tried for a side that sustains none of the rates


@dataclass(frozen=True)
class MixConfig:
    """The run's shape; the defaults keep it within about eight minutes on two quiet cores."""

    users: int = 2_000
    celebrities: int = 3
    rates: tuple[float, ...] = (25, 50, 75, 100, 150, 200, 300, 400, 600)
    warmup: float = 5.0  # seconds at the rate before the measured window (not counted)
    seconds: float = 15.0  # measured window per run
    p99_goal: float = 0.050
    max_error_rate: float = 0.001
    seed: int = 1
    sides: tuple[str, ...] = ("raygram", "baseline")


@dataclass
class Run:
    """One side at one offered rate: the latency summary, per kind, and CPU seconds by role."""

    side: str
    rate: float
    load_average: float  # 1-minute load average when the run started
    summary: Summary
    kinds: dict[str, Summary]
    cpu: dict[str, float]
    client_cpu: float  # seconds of CPU this process (the load generator) used in the window
    seconds: float  # the measured window
    idle: dict[str, float] = field(default_factory=dict)  # CPU seconds per second by role with no load at all

    def sustained(self, config: MixConfig) -> bool:
        s = self.summary
        return s.requests > 0 and s.p99 <= config.p99_goal and s.error_rate <= config.max_error_rate

    def all_roles(self) -> list[str]:
        """Every role of the stack's processes but the other side's server."""
        other = {role for side, server in SERVERS.items() if side != self.side for role in server}
        return [role for role in {*self.cpu, *self.idle} if role not in other]

    def cpu_ms(self, roles: Sequence[str] | None = None) -> float:
        """CPU ms per request of ``roles`` (default: every role but the other side's server)."""
        roles = self.all_roles() if roles is None else roles
        return sum(self.cpu.get(role, 0.0) for role in roles) * 1000 / max(self.summary.requests, 1)

    def cpu_ms_above_idle(self) -> float:
        """CPU ms per request of every role, less what the stack burns with no load (Ray's own upkeep)."""
        idle = sum(self.idle.get(role, 0.0) for role in self.all_roles()) * self.seconds
        return max(0.0, self.cpu_ms() - idle * 1000 / max(self.summary.requests, 1))


@dataclass
class Report:
    config: MixConfig
    plan: PopulationPlan
    started_load: tuple[float, float, float]
    notes: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  {text}", flush=True)

    def best(self, side: str) -> float | None:
        rates = [r.rate for r in self.runs if r.side == side and r.sustained(self.config)]
        return max(rates) if rates else None


# -- seeding: photos ----------------------------------------------------------------


async def seed_photos(
    population: Population, settings: Settings, http: aiohttp.ClientSession, pool: Counter[int], share: float
) -> tuple[int, int]:
    """Photos on ``share`` of the seeded posts, and a pool of ready unattached photos per member (``pool``).

    ``DISTINCT_PHOTOS`` photos are uploaded and processed for real; every other
    record shares their variants, exactly as ``MediaService.upload`` records a
    repeated upload of the same bytes (the upload itself is set-up here, and
    uploading thousands over HTTP would take minutes). Returns (seeded posts
    given a photo, photos in the pools).
    """
    uploader = population.plan.celebrities[0] if population.plan.celebrities else 0
    await upload_photos(population, http, settings.base_url, {uploader: DISTINCT_PHOTOS})
    templates_ids = population.media_pool.pop(uploader)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    redis = redis_from(settings)
    try:
        ids = await claim_id_generator(redis)
        templates = list((await MediaGraph(graph).get_many(templates_ids)).values())
        shared = [
            {k: v for k, v in t.items() if k not in ("id", "account_id", "status_id", "position")} for t in templates
        ]
        rng = random.Random(population.plan.spec.seed + 2)

        def record(account_id: int, created_ms: int, n: int, **more: Any) -> dict[str, Any]:
            return {
                **shared[n % len(shared)],
                "id": ids.next_id(),
                "account_id": account_id,
                "created_at": created_ms,
                "attempt_at": created_ms,
                "processed_at": created_ms,
                **more,
            }

        attached = []
        for index, posts in population.seeded_posts.items():
            for status_id in posts:
                if rng.random() < share:
                    account_id = population.members[index].id
                    media = record(account_id, id_to_ms(status_id), len(attached), status_id=status_id, position=0)
                    attached.append({"status": status_id, "media": media})
        for start in range(0, len(attached), GRAPH_BATCH):
            await graph.write(
                """
                UNWIND $rows AS r
                MATCH (s:Status {id: r.status})
                CREATE (m:Media) SET m = r.media
                SET s.media_ids = [r.media.id]
                """,
                rows=attached[start : start + GRAPH_BATCH],
            )
        now = int(time.time() * 1000)
        pooled = [(index, record(population.members[index].id, now, n)) for n, index in enumerate(pool.elements())]
        for start in range(0, len(pooled), GRAPH_BATCH):
            await graph.write(
                "UNWIND $rows AS r CREATE (m:Media) SET m = r",
                rows=[media for _, media in pooled[start : start + GRAPH_BATCH]],
            )
        for index, media in pooled:
            population.media_pool.setdefault(index, []).append(media["id"])
        return len(attached), len(pooled)
    finally:
        await graph.close()
        await redis.aclose()


# -- the runs -----------------------------------------------------------------------


async def drain(redis: aioredis.Redis, patience: float) -> float | None:
    """Seconds until every consumer group of the event stream caught up, or None after ``patience``."""
    started = time.monotonic()
    while time.monotonic() - started < patience:
        groups = await redis.xinfo_groups(STREAM)
        if all(not g["pending"] and not (g.get("lag") or 0) for g in groups):
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    return None


async def idle_cpu(seconds: float) -> dict[str, float]:
    """CPU seconds per second by role while nothing is sent: the stack's upkeep, subtracted from "above idle"."""
    before = cpu_by_role()
    await asyncio.sleep(seconds)
    return {role: spent / seconds for role, spent in delta(before, cpu_by_role()).items()}


async def measure(
    loop: OpenLoop, side: str, rate: float, ops: list[Op], config: MixConfig, idle: dict[str, float]
) -> Run:
    """Send ``ops`` (warm-up included); figures cover the requests due in the measured window only."""
    load_average = os.getloadavg()[0]
    started_wall = time.time()
    sending = asyncio.create_task(loop.run(ops))
    await asyncio.sleep(config.warmup)
    cpu_before, client_before = cpu_by_role(), resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(config.seconds)
    cpu_after, client_after = cpu_by_role(), resource.getrusage(resource.RUSAGE_SELF)
    records = await sending
    window = (started_wall + config.warmup, started_wall + config.warmup + config.seconds)
    client = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    return Run(
        side,
        rate,
        load_average,
        summarize(records, *window),
        by_kind(records, *window),
        delta(cpu_before, cpu_after),
        client,
        config.seconds,
        idle,
    )


async def compare_bodies(
    http: aiohttp.ClientSession, population: Population, urls: dict[str, str], report: Report
) -> None:
    """Home and profile pages of a few users, from both servers: the same JSON or the comparison is unfair."""
    rng = random.Random(7)
    users = rng.sample(range(population.plan.users), COMPARE_USERS)
    target = population.members[population.plan.celebrities[0] if population.plan.celebrities else 0]
    same = total = 0
    for user in users:
        member = population.members[user]
        for path in ("/api/v1/timelines/home", f"/api/v1/accounts/{target.id}/statuses"):
            bodies = []
            for url in urls.values():
                async with http.get(url + path, headers=member.headers) as response:
                    bodies.append((response.status, orjson.loads(await response.read())))
            total += 1
            same += bodies[0] == bodies[1]
            if bodies[0] != bodies[1]:
                report.note(f"DIFFERENT answers for {path} as {member.username}: the comparison is unfair")
    with_photos = 0
    async with http.get(urls["raygram"] + "/api/v1/timelines/home", headers=population.members[users[0]].headers) as r:
        with_photos = sum(bool(s["media_attachments"]) for s in orjson.loads(await r.read()))
    report.note(f"raygram and baseline answers identical for {same} of {total} pages compared")
    report.note(f"a sample home page holds {with_photos} posts with photos out of 20")


async def prewarm(http: aiohttp.ClientSession, base_url: str, population: Population) -> int:
    """Every user reads their home feed once: timelines built, likes loaded, users active. Returns failures."""

    async def read(member_index: int) -> bool:
        member = population.members[member_index]
        async with http.get(base_url + "/api/v1/timelines/home", headers=member.headers) as response:
            await response.read()
            return response.status == 200

    results = await bounded_gather([read(i) for i in range(population.plan.users)], PREWARM_CONCURRENCY)
    return sum(not ok for ok in results)


async def start_baseline(log: Path) -> tuple[asyncio.subprocess.Process, str]:
    """The baseline server on a free port, reading the stack's settings from the environment; output to ``log``."""
    port = free_port()
    out = await asyncio.to_thread(open, log, "ab")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.baseline_server", "--port", str(port), cwd=PROJECT_ROOT, stdout=out, stderr=out
        )
    finally:
        out.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(wait_for_http, f"{url}/health", 60)
    return process, url


async def sweep(stack: Stack, plan: PopulationPlan, config: MixConfig, report: Report, out_dir: Path) -> None:
    settings = stack.settings
    mix = Mix(follow=0.0)
    probes = [config.rates[0] / 2**k for k in range(1, PROBES_BELOW + 1)]  # for a side that sustains no rate
    schedules = {
        rate: plan_schedule(plan, mix, rate, config.warmup + config.seconds, seed=config.seed + k)
        for k, rate in enumerate([*config.rates, *probes])
    }
    pool = photos_needed(*schedules.values())
    pool = Counter({index: n * len(config.sides) for index, n in pool.items()})  # each side posts each schedule
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        started = time.perf_counter()
        population = await seed_population(plan, settings, http)
        report.note(
            f"seeded {plan.users:,} users, {len(plan.follows):,} follows, {sum(plan.seeded_posts):,} posts, "
            f"{len(plan.celebrities)} celebrities (threshold {plan.celebrity_threshold}, promoted by the fan-out "
            f"workers) in {time.perf_counter() - started:.0f}s"
        )
        started = time.perf_counter()
        attached, pooled = await seed_photos(population, settings, http, pool, mix.photo_share)
        report.note(
            f"photos: {attached:,} seeded posts carry one, {pooled:,} ready for the runs' posts "
            f"({DISTINCT_PHOTOS} processed for real) in {time.perf_counter() - started:.0f}s"
        )
        started = time.perf_counter()
        failed = await prewarm(http, settings.base_url, population)
        report.note(
            f"every user read their home feed once through raygram in {time.perf_counter() - started:.0f}s"
            + (f" ({failed} FAILED)" if failed else "")
        )
        process, baseline_url = await start_baseline(out_dir / "baseline.log")
        redis = redis_from(settings)
        try:
            urls = {"raygram": settings.base_url, "baseline": baseline_url}
            await compare_bodies(http, population, urls, report)
            for difference in DIFFERENCES:
                report.note(f"what differs: {difference}")
            await drain(redis, DRAIN_PATIENCE)
            idle = await idle_cpu(IDLE_SECONDS)
            report.note(
                f"the stack at rest burns {sum(idle.values()) * 1000:.0f} ms of CPU per second ("
                + ", ".join(
                    f"{role} {v * 1000:.0f}" for role, v in sorted(idle.items(), key=lambda i: -i[1]) if v > 0.001
                )
                + "): subtracted in 'all CPU above idle'"
            )
            loops = {side: OpenLoop(urls[side], population, AckLog()) for side in config.sides}
            world = next(iter(loops.values())).world
            for loop in loops.values():
                loop.world = world  # one view of posts and likes, so that no like repeats across the sides

            async def run(side: str, rate: float) -> bool:
                if await drain(redis, DRAIN_PATIENCE) is None:
                    report.note(f"the event stream did not drain within {DRAIN_PATIENCE:.0f}s before {side}")
                async with loops[side] as loop:
                    result = await measure(loop, side, rate, schedules[rate], config, idle)
                report.runs.append(result)
                print_run(result, config)
                return result.sustained(config)

            live = list(config.sides)
            for k, rate in enumerate(config.rates):  # up, each side until it first fails; who goes first alternates
                passed = {side for side in (live if k % 2 == 0 else live[::-1]) if await run(side, rate)}
                live = [side for side in live if side in passed]
                if not live:
                    break
            for rate in probes:  # down, for a side that sustained not even the lowest rate
                for side in [s for s in config.sides if report.best(s) is None]:
                    await run(side, rate)
        finally:
            await redis.aclose()
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)


# -- the report ----------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def print_run(run: Run, config: MixConfig) -> None:
    s = run.summary
    verdict = "ok" if run.sustained(config) else "NOT sustained"
    print(
        f"  {run.side:<8} {run.rate:>5g}/s offered: {s.achieved_rate:6.1f}/s ok, p50 {ms(s.p50)} ms, "
        f"p99 {ms(s.p99)} ms, p99.9 {ms(s.p999)} ms, errors {s.errors_text()}, "
        f"CPU {run.cpu_ms(SERVERS[run.side]):.2f} ms/req in the server, {run.cpu_ms_above_idle():.2f} in all "
        "above idle "
        f"(load {run.load_average:.1f}): {verdict}",
        flush=True,
    )


def tables(report: Report) -> str:
    config = report.config
    headers = [
        "side",
        "offered/s",
        "ok/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "server CPU ms/req",
        "stores CPU ms/req",
        "all CPU above idle ms/req",
        "client CPU ms/req",
        "load avg",
        "p99 <= 50 ms",
    ]
    rows = []
    for run in report.runs:
        s = run.summary
        rows.append(
            [
                run.side,
                f"{run.rate:g}",
                f"{s.achieved_rate:.1f}",
                ms(s.p50),
                ms(s.p99),
                ms(s.p999),
                f"{s.error_rate:.2%}" + (f" {s.errors_text()}" if s.errors else ""),
                f"{run.cpu_ms(SERVERS[run.side]):.2f}",
                f"{run.cpu_ms(STORES):.2f}",
                f"{run.cpu_ms_above_idle():.2f}",
                f"{run.client_cpu * 1000 / max(s.requests, 1):.2f}",
                f"{run.load_average:.1f}",
                "yes" if run.sustained(config) else "NO",
            ]
        )
    text = print_table("mix: open loop, raygram and the bare baseline at each offered rate", headers, rows)
    kind_headers = ["side", "offered/s", *(f"{k} p50/p99 ms (n)" for k in KIND_ORDER)]
    kind_rows = []
    for run in report.runs:
        cells = []
        for kind in KIND_ORDER:
            k = run.kinds.get(kind)
            cells.append(f"{ms(k.p50)}/{ms(k.p99)} ({k.requests})" if k else "-")
        kind_rows.append([run.side, f"{run.rate:g}", *cells])
    text += "\n\n" + print_table("mix: latency by request kind", kind_headers, kind_rows)
    breakdown = ["CPU ms per request by role (everything the run's processes spent, idle upkeep included):"]
    for run in report.runs:
        roles = sorted(run.all_roles(), key=lambda role: -run.cpu.get(role, 0.0))
        spent = ", ".join(f"{role} {run.cpu_ms([role]):.2f}" for role in roles if run.cpu_ms([role]) >= 0.01)
        breakdown.append(f"  {run.side:<8} {run.rate:>5g}/s: {spent}")
    print("\n" + "\n".join(breakdown), flush=True)
    text += "\n\n" + "\n".join(breakdown)
    ours, theirs = report.best("raygram"), report.best("baseline")
    top = max(config.rates)

    def best_text(rate: float | None) -> str:
        if rate is None:
            return "none of the rates tried"
        return f"{rate:g} req/s" + (" (the highest rate tried: the limit is above it)" if rate == top else "")

    headline = [
        f"highest offered rate with p99 <= {config.p99_goal * 1000:.0f} ms and <= {config.max_error_rate:.1%} errors:",
        f"  raygram  {best_text(ours)}",
        f"  baseline {best_text(theirs)}",
    ]
    if ours is not None and theirs:
        ratio = ours / theirs
        headline.append(
            f"  ratio raygram / baseline = {ratio:.0%} (goal >= 60 %: {'met' if ratio >= 0.6 else 'MISSED'})"
        )
    else:
        headline.append("  ratio raygram / baseline: undefined (a side sustained none of the rates)")
    same_rate = [
        (a, b)
        for a in report.runs
        for b in report.runs
        if a.side == "raygram"
        and b.side == "baseline"
        and a.rate == b.rate
        and a.summary.requests
        and b.summary.requests
    ]
    if same_rate:
        a, b = max(same_rate, key=lambda pair: pair[0].rate if pair[0].sustained(config) else -1)
        headline.append(
            f"  CPU per request at {a.rate:g}/s, raygram / baseline: server {a.cpu_ms(SERVERS['raygram']):.2f} / "
            f"{b.cpu_ms(SERVERS['baseline']):.2f} ms, everything above idle {a.cpu_ms_above_idle():.2f} / "
            f"{b.cpu_ms_above_idle():.2f} ms: raygram spends "
            f"{a.cpu_ms_above_idle() / max(b.cpu_ms_above_idle(), 1e-9):.1f}x the baseline's CPU per request"
        )
    print("\n" + "\n".join(headline), flush=True)
    return text + "\n\n" + "\n".join(headline)


def plot(report: Report, path: Path) -> None:
    """p50 and p99 against offered rate, both sides, log scale, the goal as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(8, 5))
    colours = {"raygram": "tab:blue", "baseline": "tab:orange"}
    for side in report.config.sides:
        runs = sorted((r for r in report.runs if r.side == side), key=lambda r: r.rate)
        if not runs:
            continue
        rates = [r.rate for r in runs]
        axes.plot(rates, [r.summary.p99 * 1000 for r in runs], "o-", color=colours[side], label=f"{side} p99")
        axes.plot(rates, [r.summary.p50 * 1000 for r in runs], "s--", color=colours[side], label=f"{side} p50")
        for r in runs:
            if not r.sustained(report.config):
                axes.annotate("x", (r.rate, r.summary.p99 * 1000), color="red", ha="center", va="bottom")
    axes.axhline(report.config.p99_goal * 1000, color="grey", linestyle=":", label="p99 goal (50 ms); x: not sustained")
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axes.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlim(left=0)
    axes.set_xlabel("offered load (requests/s, open loop)")
    axes.set_ylabel("latency (ms, from the due time)")
    load = report.started_load
    axes.set_title(
        f"raygram vs bare aiohttp baseline: {report.plan.users:,} users, mix 60/30/10 + likes\n"
        f"{os.cpu_count()} CPUs, load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_results(report: Report, text: str, out_dir: Path) -> None:
    raw = {
        "config": asdict(report.config),
        "load_average_at_start": report.started_load,
        "notes": report.notes,
        "runs": [
            {
                "side": r.side,
                "rate": r.rate,
                "load_average": r.load_average,
                "summary": {k: v for k, v in asdict(r.summary).items() if k != "errors"}
                | {"errors": dict(r.summary.errors)},
                "kinds": {
                    kind: {"requests": s.requests, "p50": s.p50, "p99": s.p99, "p999": s.p999}
                    for kind, s in r.kinds.items()
                },
                "cpu_seconds": r.cpu,
                "client_cpu_seconds": r.client_cpu,
            }
            for r in report.runs
        ],
    }
    (out_dir / "mix.json").write_text(json.dumps(raw, indent=1, default=str))
    (out_dir / "results.txt").write_text("\n".join(report.notes) + "\n\n" + text + "\n")


# -- running it ------------------------------------------------------------------------


def mix_stack(state_dir: Path, plan: PopulationPlan) -> Stack:
    """A stack of its own on free loopback ports: default settings but for the plan's celebrity threshold."""
    return Stack.isolated(state_dir, "mix", MIX_ENV | plan.stack_env())


def parse_args(argv: list[str] | None) -> tuple[MixConfig, Path]:
    default = MixConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bench mix", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in default.rates), help="offered req/s, ascending")
    parser.add_argument("--seconds", type=float, default=default.seconds, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=default.warmup, help="unmeasured seconds before each run")
    parser.add_argument("--users", type=int, default=default.users)
    parser.add_argument("--celebrities", type=int, default=default.celebrities)
    parser.add_argument("--sides", default=",".join(default.sides), help="raygram, baseline or both")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default .raygram/bench/<time>)")
    args = parser.parse_args(argv)
    sides = tuple(s for s in args.sides.split(",") if s)
    if not sides or any(s not in SERVERS for s in sides):
        raise SystemExit(f"--sides: choose from {', '.join(SERVERS)}")
    rates = tuple(sorted(float(r) for r in args.rates.split(",") if r))
    config = MixConfig(
        users=args.users,
        celebrities=args.celebrities,
        rates=rates,
        warmup=args.warmup,
        seconds=args.seconds,
        sides=sides,
    )
    return config, args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S")


def main(argv: list[str] | None = None) -> None:
    config, out_dir = parse_args(argv)
    out_dir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(
        f"mix benchmark: {os.cpu_count()} CPUs, Ray {ray.__version__}, load average at start "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)"
        + ("  -- THE MACHINE IS BUSY: the figures are noise" if load[0] > (os.cpu_count() or 1) / 2 else ""),
        flush=True,
    )
    plan = plan_population(PopulationSpec(users=config.users, celebrities=config.celebrities, seed=config.seed))
    report = Report(config, plan, load)
    report.note(f"load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, {os.cpu_count()} CPUs")
    report.note(
        f"rates {', '.join(f'{r:g}' for r in config.rates)} req/s, {config.warmup:g}s warm-up + "
        f"{config.seconds:g}s measured each, sides {', '.join(config.sides)}"
    )
    started = time.perf_counter()
    failure: BaseException | None = None
    with tempfile.TemporaryDirectory(prefix="raygram-mix-") as state_dir:
        stack = mix_stack(Path(state_dir), plan)
        try:  # ``stop`` also stops a half-started stack: only what this run started
            stack.start_services()
            stack.start_ray(dashboard=False, num_cpus=4)
            stack.deploy()
            wait_for_http(f"{stack.settings.base_url}/health")
            report.note(f"stack up in {time.perf_counter() - started:.0f}s at {stack.settings.base_url}")
            asyncio.run(sweep(stack, plan, config, report, out_dir))
        except Exception as exc:  # report what was measured before the failure, then fail
            failure = exc
        finally:
            stack.stop()
    if report.runs:
        text = tables(report)
        plot(report, out_dir / "mix-latency.png")
        write_results(report, text + (f"\n\nTHE RUN FAILED: {failure!r}" if failure else ""), out_dir)
    end = os.getloadavg()
    print(
        f"\nmix benchmark done in {time.perf_counter() - started:.0f}s; load average at the end "
        f"{end[0]:.1f} / {end[1]:.1f} / {end[2]:.1f}; results, plot and raw figures in {out_dir}",
        flush=True,
    )
    if failure is not None:
        raise failure


if __name__ == "__main__":
    main()
