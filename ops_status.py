"""``raygram status``: the seed's figures of a running stack at a glance, as one table.

Everything is read from outside the stack, the way an operator's Prometheus
would: the metrics agents' endpoints (``metrics.py``; their addresses are in
the state folder's ``stack.json``, which ``Stack.write_endpoints`` writes
once the stack is up), Redis' ``INFO`` (of every primary of a Redis Cluster)
and the event groups' backlog, the
``/health`` endpoint and the pid files of the processes ``raygram up``
started. Two scrapes ``window`` seconds apart give the rates (likes per
second…); latencies and ratios are over the stack's lifetime, since the
counters start at zero with each process. Ray's processes report to their
agent every ``METRICS_REPORT_INTERVAL_MS``, so a window shorter than that can
show a rate of zero under load.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

import metrics
from launcher import ManagedProcess, ProcessIdentity
from redis_store.nodes import memory_totals, primaries_info
from stack import ENDPOINTS_FILE

Labels = frozenset[tuple[str, str]]
KEPT_LABELS = {tag for m in metrics.METRICS for tag in m.tags} | {"le"}  # Ray's own (worker, node…) are summed over


@dataclass
class Samples:
    """One scrape of every endpoint, summed over Ray's per-process series: value by (sample name, our labels)."""

    values: dict[tuple[str, Labels], float]

    def total(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.values.items() if n == name and wanted <= ls)

    def gauge(self, name: str, **labels: str) -> float | None:
        """The largest of a gauge's series (a restarted sampler's old series may linger beside the new one)."""
        wanted = set(labels.items())
        found = [v for (n, ls), v in self.values.items() if n == name and wanted <= ls]
        return max(found) if found else None

    def label_values(self, name: str, label: str) -> set[str]:
        return {value for (n, ls) in self.values if n == name for key, value in ls if key == label}

    def quantile(self, metric: metrics.Metric, q: float, **labels: str) -> float | None:
        """``histogram_quantile`` over the histogram's buckets (linear inside a bucket), None without data."""
        wanted = set(labels.items())
        buckets: dict[float, float] = defaultdict(float)
        for (n, ls), v in self.values.items():
            if n == f"{metric.exported}_bucket" and wanted <= ls:
                buckets[float(dict(ls)["le"])] += v
        if not buckets or buckets.get(math.inf, 0) == 0:
            return None
        bounds = sorted(buckets)
        rank = q * buckets[math.inf]
        lower, below = 0.0, 0.0
        for bound in bounds:
            if buckets[bound] >= rank:
                if math.isinf(bound):
                    return lower  # beyond the last boundary: all Prometheus can say is "at least"
                share = (rank - below) / (buckets[bound] - below) if buckets[bound] > below else 1.0
                return lower + (bound - lower) * share
            lower, below = bound, buckets[bound]
        return None


def scrape(urls: list[str], timeout: float = 5.0) -> Samples:
    values: dict[tuple[str, Labels], float] = defaultdict(float)
    for url in urls:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith(("ray_raygram_", "ray_serve_")):
                    labels = frozenset((k, v) for k, v in sample.labels.items() if k in KEPT_LABELS)
                    values[(sample.name, labels)] += sample.value
    return Samples(dict(values))


def read_endpoints(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / ENDPOINTS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def ratio(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def per_second(before: Samples, after: Samples, seconds: float, name: str, **labels: str) -> str:
    return f"{(after.total(name, **labels) - before.total(name, **labels)) / seconds:.1f}/s"


def figures(before: Samples, after: Samples, seconds: float) -> list[tuple[str, str, str]]:
    """(figure, value, detail) rows: the seed's five first, then what operators watch beside them."""
    m, s = metrics, after
    feed_count = f"{m.FEED_LOAD.exported}_count"
    paths = {p: s.total(feed_count, path=p) for p in ("inbox", "rebuild", "degraded")}
    posts, uploads = m.POSTS.exported, m.MEDIA_UPLOADS.exported
    created, failed = s.total(posts, outcome="created"), s.total(posts, outcome="failed")
    accepted, upload_failed = s.total(uploads, outcome="accepted"), s.total(uploads, outcome="failed")
    refused = s.total(uploads) - accepted - upload_failed
    lookups = m.CACHE_LOOKUPS.exported

    def hit_ratio(cache: str) -> str:
        hits = s.total(lookups, cache=cache, result="hit")
        return ratio(hits, hits + s.total(lookups, cache=cache, result="miss"))

    likes, notifications = m.LIKES.exported, m.NOTIFICATIONS.exported
    dead = {g: s.gauge(m.DEAD_LETTERS.exported, group=g) for g in s.label_values(m.DEAD_LETTERS.exported, "group")}
    memory = s.gauge(m.REDIS_MEMORY.exported)
    return [
        (
            "feed load latency",
            f"p50 {ms(s.quantile(m.FEED_LOAD, 0.5))}, p99 {ms(s.quantile(m.FEED_LOAD, 0.99))}",
            f"{sum(paths.values()):.0f} reads: " + ", ".join(f"{p} {n:.0f}" for p, n in paths.items()),
        ),
        (
            "post upload success",
            f"posts {ratio(created, created + failed)}, media {ratio(accepted, accepted + upload_failed)}",
            f"{created:.0f} posts created, {failed:.0f} failed; {accepted:.0f} media accepted, "
            f"{upload_failed:.0f} failed, {refused:.0f} refused",
        ),
        (
            "likes / comments per second",
            f"{per_second(before, s, seconds, likes)} / "
            f"{per_second(before, s, seconds, posts, kind='comment', outcome='created')}",
            f"{s.total(likes):.0f} likes, {s.total(posts, kind='comment', outcome='created'):.0f} comments in all",
        ),
        (
            "cache hit ratio",
            f"timeline {hit_ratio('timeline')}, posts {hit_ratio('status')}",
            f"accounts {hit_ratio('account')}",
        ),
        (
            "notification delivery",
            per_second(before, s, seconds, notifications),
            f"{s.total(notifications):.0f} delivered, lag p50 {ms(s.quantile(m.NOTIFICATION_LAG, 0.5))}, "
            f"p99 {ms(s.quantile(m.NOTIFICATION_LAG, 0.99))}",
        ),
        (
            "fan-out lag",
            f"p50 {ms(s.quantile(m.FANOUT_LAG, 0.5))}, p99 {ms(s.quantile(m.FANOUT_LAG, 0.99))}",
            f"{s.total(f'{m.FANOUT_LAG.exported}_count'):.0f} posts fanned out",
        ),
        (
            "dead letters",
            f"{sum(v or 0 for v in dead.values()):.0f}",
            ", ".join(f"{g} {v:.0f}" for g, v in sorted(dead.items()) if v is not None) or "no group yet",
        ),
        ("Redis memory (sampled)", "–" if memory is None else f"{memory / 2**20:.1f} MiB", ""),
    ]


def redis_rows(redis_url: str, cluster_urls: str = "") -> list[tuple[str, str, str]]:
    """Redis' own answer now: memory, clients, the append-only file, and each event group's backlog. On a Redis
    Cluster (``cluster_urls``) memory is summed over the primaries, then each primary has a row of its own."""
    from redis_store.client import connect, connect_cluster
    from redis_store.events import EventStream

    async def read() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        redis = connect_cluster(cluster_urls, fail_fast=True) if cluster_urls else connect(redis_url, fail_fast=True)
        try:
            return await primaries_info(redis), await EventStream(redis).backlog()
        finally:
            await redis.aclose()

    try:
        infos, backlog = asyncio.run(read())
    except Exception as exc:
        return [("Redis", "[red]down[/red]", str(exc))]

    def node_detail(info: dict[str, Any]) -> str:
        return (
            f"{info['connected_clients']} clients, AOF {'on' if info.get('aof_enabled') else 'off'}, "
            f"peak {info['used_memory_peak_human']}"
        )

    used, limit = memory_totals(infos)
    of = f" of {limit / 2**20:.0f} MiB" if limit else ""
    if cluster_urls:
        rows = [("Redis Cluster", f"{used / 2**20:.1f} MiB used{of}", f"summed over {len(infos)} primaries")]
        for address, info in sorted(infos.items()):
            node_limit = int(info.get("maxmemory", 0))
            node_of = f" of {node_limit / 2**20:.0f} MiB" if node_limit else ""
            rows.append((f"  primary {address}", f"{info['used_memory_human']} used{node_of}", node_detail(info)))
    else:
        (info,) = infos.values()
        rows = [("Redis", f"{info['used_memory_human']} used{of}", node_detail(info))]
    for group, b in sorted(backlog.items()):
        lag = "?" if b.lag < 0 else str(b.lag)
        rows.append((f"events: {group}", f"{b.pending} pending, {lag} unread", f"{b.dead} dead letters"))
    return rows


def process_rows(state_dir: Path, base_url: str | None) -> list[tuple[str, str, str]]:
    """The processes ``raygram up`` started (by their pid files) and the API's own health answer."""
    rows = []
    stack = ProcessIdentity.read(state_dir / "stack.pid")
    rows.append(("raygram up", up(stack.pid if stack is not None and stack.alive() else None), str(state_dir)))
    for name in ("redis", "graph"):
        pid = ManagedProcess(name, state_dir / f"{name}.pid", state_dir / f"{name}.log").running_pid()
        rows.append((f"{name} server", up(pid) if pid else "external or not running", ""))
    if base_url:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
                health = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            health = json.loads(exc.read() or b"{}")
        except OSError as exc:
            health = {"status": f"unreachable: {exc}"}
        status = health.pop("status", "?")
        colour = "green" if status == "ok" else "red"
        rows.append(("API health", f"[{colour}]{status}[/{colour}]", ", ".join(f"{k} {v}" for k, v in health.items())))
    return rows


def up(pid: int | None) -> str:
    return f"[green]up[/green] (pid {pid})" if pid else "[red]not running[/red]"


def status(
    state_dir: Path, window: float, metrics_urls: list[str] | None = None, console: Console | None = None
) -> int:
    """Print the table; 0 if the stack answered, 1 if no stack runs for ``state_dir``."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough that no row wraps (Rich assumes 80)
            console = Console(width=160)
    endpoints = read_endpoints(state_dir)
    if endpoints is None and not metrics_urls:
        console.print(f"raygram is not running for {state_dir} (no {ENDPOINTS_FILE}); `raygram up` starts it")
        return 1
    endpoints = endpoints or {}
    urls = metrics_urls or endpoints.get("metrics_urls", [])
    table = Table(title=f"raygram status ({state_dir})", title_justify="left")
    for column in ("figure", "value", "detail"):
        table.add_column(column, overflow="fold")
    try:
        before = scrape(urls)
        started = time.monotonic()
        time.sleep(window)
        after = scrape(urls)
        rows = figures(before, after, time.monotonic() - started)
        replicas = len(after.label_values("ray_serve_replica_processing_queries", "replica"))
        rows.append(("Serve replicas (reporting)", str(replicas), ""))
    except OSError as exc:
        rows = [("metrics", "[red]unreachable[/red]", f"{', '.join(urls)}: {exc}")]
    if endpoints.get("redis_url") or endpoints.get("redis_cluster_urls"):
        rows += redis_rows(endpoints.get("redis_url", ""), endpoints.get("redis_cluster_urls", ""))
    rows += process_rows(state_dir, endpoints.get("base_url"))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"metrics: {', '.join(urls)}; rates over the last {window:.0f} s")
    return 0
