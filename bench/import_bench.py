"""The import benchmark (docs/lab.md): ``raygram import``'s follows per second, beside the HTTP API's.

A real data set (``musae-github.csv`` from the shared data sets beside the
project by default: 37,700 accounts, 578,006 follows as mutual friendships)
is imported into a stack of its own (free loopback ports, a temporary state
folder) through ``lab.importer``, the code ``raygram import`` runs, less a
seeded sample of a few hundred follows held out. The import runs before Ray
and Serve start (it needs only the graph and Redis). Then, as the same-run
baseline, those held-out follows are made through the HTTP API
(``POST /api/v1/accounts/:id/follow``, eight at a time, with tokens issued
to the followers beforehand), the only other way a graph gets in. Both sides
make the same kind of follows between the same accounts; the API also does
what a follow does beyond the graph (the followee's follower list, the
follower's timeline, the event), which an import leaves to the finish phase.

Printed: the import's phases (accounts, follows, finish) with their rates,
the CPU time per follow of the graph server (``bench.cpu``) and of the
importer itself (on a busy machine the rates drop but these figures hold:
the graph server writes one transaction at a time, so one core's worth of
it bounds the rate at a million divided by its microseconds per follow),
the HTTP rate and the ratio,
and whether the 10,000 follows/s goal was met. Then the counts are checked:
every account's follower count in the graph equals its followers in the file.

``python -m bench import [--graph FILE --directed] [--batch N ...]``: several
``--batch`` values import the graph once each (under a prefix of their own).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

from bench.cpu import cpu_by_role, delta
from config import Settings
from graph.accounts import AccountGraph
from graph.driver import GraphClient, wait_for_graph
from graph.schema import apply_schema
from lab.graphs import EdgeList, read_edge_list, synthetic
from lab.importer import FOLLOW_BATCH, GraphImport, ImportReport
from redis_store.client import claim_id_generator, redis_from
from services.auth import AuthService
from services.passwords import Passwords
from stack import Stack, wait_for_http

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"  # beside the project, as its README says
DEFAULT_GRAPH = DATASETS / "musae-github.csv"
GOAL = 10_000  # follows per second into the embedded graph
HTTP_SAMPLE = 300
HTTP_CONCURRENCY = 8
BENCH_ENV = {"FOLLOW_RATE_LIMIT": "100000"}


@dataclass
class Figures:
    batch: int
    report: ImportReport
    graph_cpu: float  # graph server CPU seconds during the follows phase
    client_cpu: float  # this process's CPU seconds during it (making the batches, the driver)


def hold_out(edges: EdgeList, sample: int, seed: int) -> tuple[EdgeList, list[tuple[int, int]]]:
    """The edge list without ``sample`` follows drawn at random, and those follows as (node, node)."""
    picked = np.sort(np.random.default_rng(seed).choice(len(edges), size=min(sample, len(edges)), replace=False))
    keep = np.ones(len(edges), dtype=bool)
    keep[picked] = False
    rest = EdgeList(edges.src[keep], edges.dst[keep], edges.nodes, edges.skipped, edges.ids)
    return rest, [(int(edges.src[k]), int(edges.dst[k])) for k in picked]


async def import_once(settings: Settings, edges: EdgeList, prefix: str, batch: int) -> Figures:
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    redis = redis_from(settings)
    ids = await claim_id_generator(redis)
    marks: dict[str, tuple[dict[str, float], float]] = {}

    def progress(phase: str, done: int, total: int) -> None:  # CPU at the start and end of the follows phase
        if phase == "follows" and "start" not in marks:
            marks["start"] = (cpu_by_role(), time.process_time())
        if phase == "counts" and "end" not in marks:
            marks["end"] = (cpu_by_role(), time.process_time())

    try:
        report = await GraphImport(settings, graph, redis, ids, progress).run(edges, prefix, batch=batch)
    finally:
        await ids.release()
        await graph.close()
        await redis.aclose()
    (roles_before, client_before), (roles_after, client_after) = marks["start"], marks["end"]
    return Figures(batch, report, delta(roles_before, roles_after).get("graph", 0.0), client_after - client_before)


async def follow_over_http(settings: Settings, edges: EdgeList, prefix: str, follows: list[tuple[int, int]]) -> float:
    """The held-out follows through the API; follows per second (tokens are issued before the clock starts)."""
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    redis = redis_from(settings)
    ids = await claim_id_generator(redis)
    try:
        accounts = AccountGraph(graph)
        base = settings.base_url
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/api/v1/apps", data={"client_name": "import bench", "scopes": "read write follow"}
            ) as response:
                client_id = (await response.json())["client_id"]
            app = await accounts.get_app_by_client_id(client_id)
            auth = AuthService(settings, accounts, redis, ids, Passwords(settings))
            nodes = sorted({a for a, _ in follows} | {b for _, b in follows})
            by_name = {}
            for node in nodes:
                by_name[node] = await accounts.get_by_username(f"{prefix}{int(edges.ids[node])}")
            tokens = {}
            for node in {a for a, _ in follows}:
                tokens[node] = (await auth.issue_token(app, by_name[node]["id"], ["read", "write", "follow"]))[
                    "access_token"
                ]
            gate = asyncio.Semaphore(HTTP_CONCURRENCY)

            async def one(a: int, b: int) -> None:
                async with gate:
                    url = f"{base}/api/v1/accounts/{by_name[b]['id']}/follow"
                    async with http.post(url, headers={"Authorization": f"Bearer {tokens[a]}"}) as response:
                        if response.status != 200:
                            raise RuntimeError(f"follow over HTTP: {response.status} {await response.text()}")

            started = time.perf_counter()
            await asyncio.gather(*(one(a, b) for a, b in follows))
            return len(follows) / (time.perf_counter() - started)
    finally:
        await ids.release()
        await graph.close()
        await redis.aclose()


async def check_counts(settings: Settings, edges: EdgeList, prefix: str) -> str:
    """Every account's follower and following counts against the file (the import and the API's follows)."""
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    try:
        rows = await graph.read(
            "MATCH (a:Account) WHERE a.username STARTS WITH $p "
            "RETURN a.username AS u, a.followers_count AS followers, a.following_count AS following",
            p=prefix,
        )
    finally:
        await graph.close()
    node_of = {int(original): node for node, original in enumerate(edges.ids.tolist())}
    followers = np.bincount(edges.dst, minlength=edges.nodes)
    following = np.bincount(edges.src, minlength=edges.nodes)
    wrong = [
        r["u"]
        for r in rows
        if (r["followers"], r["following"])
        != (followers[node_of[int(r["u"][len(prefix) :])]], following[node_of[int(r["u"][len(prefix) :])]])
    ]
    if len(rows) != edges.nodes or wrong:
        return f"COUNTS WRONG: {len(rows)} accounts of {edges.nodes}, {len(wrong)} with wrong counts ({wrong[:3]})"
    return f"counts exact: {len(rows):,} accounts, followers and following as in the file"


def load(args: argparse.Namespace) -> tuple[EdgeList, str]:
    if args.graph.exists():
        started = time.perf_counter()
        edges = read_edge_list(args.graph, directed=args.directed)
        return edges, f"{args.graph.name}: read in {time.perf_counter() - started:.2f}s"
    edges = synthetic(37_700, 2.1, seed=1, mean_degree=15)
    return edges, f"{args.graph} is missing: a synthetic power-law graph of the same size instead (seed 1)"


async def import_all(settings: Settings, rest: EdgeList, batches: list[int]) -> Figures:
    """The graph imported once per batch size; the fastest run's figures."""
    results = []
    for batch in batches:
        load_at_start = os.getloadavg()[0]
        figures = await import_once(settings, rest, f"ib{batch}_", batch)
        results.append(figures)
        r = figures.report
        accounts_rate = r.accounts / r.seconds["accounts"]
        print(
            f"batch {batch:>6,}: accounts {r.accounts:,} in {r.seconds['accounts']:.1f}s ({accounts_rate:,.0f}/s); "
            f"follows {r.follows_written:,} in {r.seconds['follows']:.1f}s = {r.follows_per_second:,.0f}/s; "
            f"finish (counts, celebrities, Redis) {r.seconds['finish']:.1f}s; CPU per follow: graph server "
            f"{1e6 * figures.graph_cpu / max(r.follows_written, 1):.0f} µs, importer "
            f"{1e6 * figures.client_cpu / max(r.follows_written, 1):.0f} µs "
            f"(load average {load_at_start:.1f} at start)",
            flush=True,
        )
    best = max(results, key=lambda figures: figures.report.follows_per_second)
    rate = best.report.follows_per_second
    print(f"goal {GOAL:,} follows/s: {'MET' if rate >= GOAL else 'MISSED'} ({rate:,.0f}/s)", flush=True)
    return best


async def baseline(settings: Settings, edges: EdgeList, best: Figures, held_out: list[tuple[int, int]]) -> None:
    prefix = f"ib{best.batch}_"
    http_rate = await follow_over_http(settings, edges, prefix, held_out)
    rate = best.report.follows_per_second
    print(
        f"HTTP API, the same kind of follows ({len(held_out)} held out of the import, {HTTP_CONCURRENCY} at a time): "
        f"{http_rate:,.0f}/s; import at batch {best.batch:,}: {rate:,.0f}/s = {rate / http_rate:,.0f}x the API",
        flush=True,
    )
    print(await check_counts(settings, edges, prefix), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench import", description=__doc__)
    parser.add_argument("--graph", type=Path, default=DEFAULT_GRAPH, help="an edge list (default: musae-github.csv)")
    parser.add_argument("--directed", action="store_true", help="the file's lines are follows, not friendships")
    parser.add_argument("--batch", type=int, action="append", help=f"follows per transaction ({FOLLOW_BATCH})")
    parser.add_argument("--seed", type=int, default=1, help="which follows are held out for the HTTP baseline")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_average = os.getloadavg()
    print(
        f"import benchmark: {os.cpu_count()} CPUs, load average at start {load_average[0]:.1f} / "
        f"{load_average[1]:.1f} / {load_average[2]:.1f}"
        + ("  -- THE MACHINE IS BUSY: the rates are low; the CPU per follow holds" if load_average[0] > 1 else ""),
        flush=True,
    )
    edges, source = load(args)
    print(f"{source}; {edges.nodes:,} accounts, {len(edges):,} follows", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="raygram-import-") as state_dir:
        stack = Stack.isolated(Path(state_dir), "import", BENCH_ENV)
        try:  # ``stop`` also stops a half-started stack: only what this run started
            stack.start_services()
            s = stack.settings
            # The import needs only the graph and Redis: it runs before Ray starts, as against a stack whose
            # actors are idle (and a Ray that fails to start on a busy machine costs only the baseline).
            wait_for_graph(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database, timeout=180)
            apply_schema(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)
            rest, held_out = hold_out(edges, HTTP_SAMPLE, args.seed)
            best = asyncio.run(import_all(s, rest, args.batch or [FOLLOW_BATCH]))
            stack.start_ray(dashboard=False, num_cpus=4)
            stack.deploy()
            wait_for_http(f"{s.base_url}/health")
            asyncio.run(baseline(s, edges, best, held_out))
        finally:
            stack.stop()
    end = os.getloadavg()
    print(
        f"import benchmark done in {time.perf_counter() - started:.0f}s; load average at the end "
        f"{end[0]:.1f} / {end[1]:.1f} / {end[2]:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
