"""``raygram import``: its arguments, the progress bar, and the summary it prints (the work is ``lab.importer``).

It loads into the stack the settings describe (``raygram up`` in the same
folder, or ``NEO4J_URI`` and ``REDIS_URL``): the graph and Redis must be up;
the fan-out workers carry out the celebrity promotions once they run.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the rest of the CLI (``raygram up`` stays running) does not load numpy, rich or the driver
    from rich.console import Console

    from config import Settings
    from lab.graphs import EdgeList
    from lab.importer import ImportReport

GRAPH_PATIENCE = 10.0  # seconds to reach the graph before saying the stack is not up
SKIPPED_SHOWN = 10
PHASES = {"accounts": "accounts", "follows": "follows", "counts": "counts, celebrities"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", nargs="?", type=Path, help="an edge list (SNAP, CSV with a header, .mtx; gzip or not)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--directed", dest="directed", action="store_const", const=True, help="each line is one follow")
    kind.add_argument(
        "--undirected",
        dest="directed",
        action="store_const",
        const=False,
        help="each line is a mutual friendship: a follow each way (one of the two is required for a file)",
    )
    parser.add_argument("--strict", action="store_true", help="refuse the file at its first bad line")
    parser.add_argument("--synthetic", type=int, metavar="N", help="instead of a file: a power-law graph of N accounts")
    parser.add_argument("--exponent", type=float, default=2.1, help="power-law exponent of --synthetic (2.1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of --synthetic (1)")
    parser.add_argument("--mean-degree", type=float, default=10.0, help="follows per account of --synthetic (10)")
    parser.add_argument(
        "--prefix", help="username prefix: username = prefix + the node's id (default: from the file's name)"
    )
    parser.add_argument(
        "--passwords", type=Path, help="lines of 'ID PASSWORD': these accounts can log in with that password"
    )
    parser.add_argument("--batch", type=int, help="follows per transaction (default: lab.importer.FOLLOW_BATCH)")


def default_prefix(args: argparse.Namespace) -> str:
    if args.synthetic is not None:
        return f"syn{args.synthetic}s{args.seed}_"
    stem = args.graph.name.split(".")[0]
    return re.sub(r"[^a-z0-9_]", "_", stem.lower())[:16].strip("_") + "_"


def load(args: argparse.Namespace, console: Console) -> EdgeList:
    from lab.graphs import EdgeListError, read_edge_list, synthetic

    if args.synthetic is not None:
        if args.graph is not None:
            raise EdgeListError("give a graph file or --synthetic N, not both")
        started = time.perf_counter()
        try:
            edges = synthetic(args.synthetic, args.exponent, args.seed, args.mean_degree)
        except ValueError as exc:
            raise EdgeListError(str(exc)) from None
        seconds = time.perf_counter() - started
        console.print(f"generated {edges.nodes:,} accounts, {len(edges):,} follows in {seconds:.1f}s")
        return edges
    if args.graph is None:
        raise EdgeListError("give a graph file or --synthetic N")
    if args.directed is None:
        raise EdgeListError("say whether the file's edges are follows (--directed) or friendships (--undirected)")
    started = time.perf_counter()
    edges = read_edge_list(args.graph, directed=args.directed, strict=args.strict)
    console.print(
        f"read {args.graph}: {edges.nodes:,} accounts, {len(edges):,} follows in {time.perf_counter() - started:.1f}s"
        f" ({edges.self_loops:,} self-loops and {edges.duplicates:,} repeated follows left out)"
    )
    for number, why in edges.skipped[:SKIPPED_SHOWN]:
        console.print(f"  skipped line {number}: {why}", markup=False)
    if len(edges.skipped) > SKIPPED_SHOWN:
        console.print(f"  … and {len(edges.skipped) - SKIPPED_SHOWN:,} more bad lines skipped (--strict refuses them)")
    return edges


async def import_into_stack(
    settings: Settings, edges: EdgeList, prefix: str, passwords: dict[int, str], batch: int | None, console: Console
) -> ImportReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from graph.driver import GraphClient
    from lab.importer import FOLLOW_BATCH, GraphImport, ImportFailed
    from redis_store.client import claim_id_generator, redis_from

    graph_uri = settings.neo4j_uri or f"bolt://127.0.0.1:{settings.graph_bolt_port}"
    graph = GraphClient(graph_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    redis = redis_from(settings)
    ids = None
    try:
        try:
            await asyncio.wait_for(graph.ping(), GRAPH_PATIENCE)
            await asyncio.wait_for(redis.ping(), GRAPH_PATIENCE)
        except Exception as exc:
            raise ImportFailed(f"the stack does not answer ({exc!r}); is `raygram up` running here?") from exc
        ids = await claim_id_generator(redis)
        columns = (
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as bar:
            tasks: dict[str, object] = {}
            began: dict[str, tuple[float, int]] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(PHASES[phase], total=total, completed=done, rate="")
                    began[phase] = (time.perf_counter(), done)
                since, first = began[phase]
                elapsed = time.perf_counter() - since
                rate = f"{(done - first) / elapsed:,.0f}/s" if elapsed > 0 and done > first else ""
                bar.update(tasks[phase], completed=done, rate=rate)

            job = GraphImport(settings, graph, redis, ids, progress)
            return await job.run(edges, prefix, passwords, batch or FOLLOW_BATCH)
    finally:
        if ids is not None:
            await ids.release()
        await graph.close()
        await redis.aclose()


def run(settings: Settings, args: argparse.Namespace) -> int:
    import neo4j
    import redis
    from rich.console import Console

    from lab.graphs import EdgeListError
    from lab.importer import ImportFailed, read_passwords

    console = Console()
    try:
        edges = load(args, console)
        prefix = args.prefix if args.prefix is not None else default_prefix(args)
        passwords = read_passwords(args.passwords, settings) if args.passwords else {}
        report = asyncio.run(import_into_stack(settings, edges, prefix, passwords, args.batch, console))
    except (EdgeListError, ImportFailed, OSError) as exc:
        print(f"raygram import: {exc}", file=sys.stderr)
        return 1
    except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, redis.exceptions.RedisError) as exc:
        print(f"raygram import: stopped by {exc!r}; run the same command again to finish", file=sys.stderr)
        return 1
    resumed = f", resumed after {report.batches_skipped} batches written before" if report.batches_skipped else ""
    console.print(
        f"imported {report.accounts:,} accounts ({report.accounts_created:,} new, usernames {prefix}ID) and "
        f"{report.follows:,} follows ({report.follows_written:,} written now at {report.follows_per_second:,.0f}/s"
        f"{resumed}); {len(report.celebrities):,} celebrities at {settings.celebrity_threshold:,} followers; "
        f"job {report.key}",
        markup=False,
    )
    return 0
