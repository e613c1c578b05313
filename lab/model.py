"""Model mode: the trace replayed through a cost model, vectorised over follow edges, one Ray task per strategy.

What is counted is exact, from the graph and the trace, under the served
code's rules: a post by an author whose edge to a follower is pushed writes
one inbox entry per *active* follower (fan-out skips inactive users), a pulled
author appends once to their outbox, and a home read merges one outbox per
pulled author the reader follows. Inboxes are capped at ``timeline_max``,
outboxes at ``outbox_max``, as the stores cap them.

What is timed comes from unit costs (``Calibration``) that a live run measured
on this machine (``lab.live.calibrate``): a home read costs ``read_ms`` plus
``merge_ms`` per outbox merged; a post's delivery lag is ``lag_ms`` plus
``lag_per_write_ms`` per inbox written; memory is ``bytes_per_entry`` per
timeline entry plus ``bytes_per_key`` per timeline; CPU is per request, per
write and per merge.

Every figure is a handful of ``np.bincount`` passes over the edges, so ten
million users with a hundred million follows take seconds per strategy. The
strategies of a sweep are independent Ray tasks sharing the graph and trace
through the object store, so a cluster (``RAY_ADDRESS``) spreads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.experiment import Calibration
from lab.strategies import Strategy
from lab.trace import HOME, POST, USER, Trace

CDF_SAMPLE = 20_000  # per-request figures kept for the CDF plots (an even sample)


@dataclass
class Outcome:
    """One strategy's figures, from either mode (``lab.live`` fills the same fields from the stores)."""

    strategy: str
    mode: str
    posts: int
    home_reads: int
    user_reads: int
    writes: int  # inbox entries written by fan-out (the author's own inbox not counted)
    outbox_appends: int
    merges: int  # outboxes merged over all home reads
    timeline_entries: int
    timeline_keys: int
    timeline_bytes: float
    read_ms: np.ndarray  # per home read (a sample)
    lag_ms: np.ndarray  # per post: acknowledged -> in every active follower's feed (a sample)
    cpu_seconds: float
    seconds: float = 0.0  # how long the run took
    errors: int = 0  # live: requests that failed (left out of every figure)
    undelivered: int = 0  # live: posts not in every active follower's feed within the settle time

    @property
    def ops(self) -> int:
        return self.posts + self.home_reads + self.user_reads

    @property
    def writes_per_post(self) -> float:
        return self.writes / self.posts if self.posts else 0.0

    @property
    def merges_per_read(self) -> float:
        return self.merges / self.home_reads if self.home_reads else 0.0

    def row(self) -> dict[str, float | int | str]:
        def pct(values: np.ndarray, q: float) -> float:
            return float(np.percentile(values, q)) if len(values) else float("nan")

        return {
            "strategy": self.strategy,
            "mode": self.mode,
            "posts": self.posts,
            "home_reads": self.home_reads,
            "user_reads": self.user_reads,
            "writes": self.writes,
            "writes_per_post": round(self.writes_per_post, 3),
            "outbox_appends": self.outbox_appends,
            "merges_per_read": round(self.merges_per_read, 3),
            "read_ms_mean": round(float(self.read_ms.mean()), 3) if len(self.read_ms) else float("nan"),
            "read_ms_p50": round(pct(self.read_ms, 50), 3),
            "read_ms_p99": round(pct(self.read_ms, 99), 3),
            "lag_ms_p50": round(pct(self.lag_ms, 50), 3),
            "lag_ms_p99": round(pct(self.lag_ms, 99), 3),
            "lag_ms_max": round(float(self.lag_ms.max()), 3) if len(self.lag_ms) else float("nan"),
            "timeline_entries": self.timeline_entries,
            "timeline_keys": self.timeline_keys,
            "timeline_mb": round(self.timeline_bytes / 2**20, 4),
            "cpu_s_per_1k_ops": round(self.cpu_seconds / self.ops * 1000, 4) if self.ops else float("nan"),
            "seconds": round(self.seconds, 2),
            "errors": self.errors,
            "undelivered": self.undelivered,
        }


def sample(values: np.ndarray, size: int = CDF_SAMPLE) -> np.ndarray:
    """An evenly spaced sample of the sorted values: the CDF's shape at a bounded size."""
    values = np.sort(values)
    if len(values) <= size:
        return values
    return values[np.linspace(0, len(values) - 1, size).astype(np.int64)]


@dataclass(frozen=True)
class Replay:
    """A graph and trace reduced to what the trace touches, computed once and shared by every strategy.

    Only follows into authors who post (fan-out writes, inboxes, outboxes) and follows out of users who
    read their home feed (merges) can change a figure; on a large graph that is a fraction of all follows.
    """

    nodes: int
    followers: np.ndarray  # per user: every follower (thresholds count them all, as the served code does)
    active: np.ndarray
    post_rate: np.ndarray
    read_rate: np.ndarray
    authors: np.ndarray  # per post: its author
    readers: np.ndarray  # per home read: its reader
    posts_by: np.ndarray  # per user: posts in the trace
    post_src: np.ndarray  # follows into authors who post
    post_dst: np.ndarray
    read_src: np.ndarray  # follows out of users who read their home feed
    read_dst: np.ndarray
    ops: int
    user_reads: int

    @classmethod
    def of(cls, src: np.ndarray, dst: np.ndarray, nodes: int, trace: Trace) -> Replay:
        authors = trace.user[trace.kind == POST]
        readers = trace.user[trace.kind == HOME]
        posts_by = np.bincount(authors, minlength=nodes)
        into_authors = posts_by[dst] > 0
        from_readers = np.bincount(readers, minlength=nodes)[src] > 0
        return cls(
            nodes=nodes,
            followers=np.bincount(dst, minlength=nodes),
            active=trace.active,
            post_rate=trace.post_rate,
            read_rate=trace.read_rate,
            authors=authors,
            readers=readers,
            posts_by=posts_by,
            post_src=src[into_authors],
            post_dst=dst[into_authors],
            read_src=src[from_readers],
            read_dst=dst[from_readers],
            ops=len(trace),
            user_reads=int((trace.kind == USER).sum()),
        )

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.__dict__.values() if isinstance(v, np.ndarray))


def simulate(
    src: np.ndarray,
    dst: np.ndarray,
    nodes: int,
    trace: Trace,
    strategy: Strategy,
    costs: Calibration,
    timeline_max: int,
    outbox_max: int,
) -> Outcome:
    """One strategy over the trace (``src[i]`` follows ``dst[i]``, dense ids below ``nodes``)."""
    return replay(Replay.of(src, dst, nodes, trace), strategy, costs, timeline_max, outbox_max)


def replay(r: Replay, strategy: Strategy, costs: Calibration, timeline_max: int, outbox_max: int) -> Outcome:
    """One strategy's figures from a ``Replay``."""
    import time

    started = time.perf_counter()
    n = r.nodes
    pulled = strategy.pulled_edges(r.post_src, r.post_dst, r.followers, r.post_rate, r.read_rate)
    pushed = ~pulled & r.active[r.post_src]
    pushes_per_post = np.bincount(r.post_dst, weights=pushed, minlength=n)  # active followers written per post
    has_outbox = np.bincount(r.post_dst, weights=pulled, minlength=n) > 0  # pulled by at least one follower
    # Inboxes: pushed posts of followees, plus the user's own posts (active users only), capped.
    inbox = np.bincount(r.post_src, weights=pushed * r.posts_by[r.post_dst], minlength=n) + r.posts_by * r.active
    del pulled, pushed
    inbox = np.minimum(inbox, timeline_max)
    outbox = np.where(has_outbox, np.minimum(r.posts_by, outbox_max), 0)
    read_pulled = strategy.pulled_edges(r.read_src, r.read_dst, r.followers, r.post_rate, r.read_rate)
    merges_per_read = np.bincount(r.read_src, weights=read_pulled, minlength=n)  # outboxes a home read merges
    del read_pulled

    post_writes = pushes_per_post[r.authors]
    delivering = (post_writes > 0) | has_outbox[r.authors]  # posts with someone to deliver to: the lag's sample
    read_merges = merges_per_read[r.readers]
    entries = int(inbox.sum() + outbox.sum())
    keys = int((inbox > 0).sum() + (outbox > 0).sum())
    writes, merges = int(post_writes.sum()), int(read_merges.sum())
    cpu_ms = costs.cpu_per_op_ms * r.ops + costs.cpu_per_write_ms * writes + costs.cpu_per_merge_ms * merges
    return Outcome(
        strategy=strategy.name,
        mode="model",
        posts=len(r.authors),
        home_reads=len(r.readers),
        user_reads=r.user_reads,
        writes=writes,
        outbox_appends=int(has_outbox[r.authors].sum()),
        merges=merges,
        timeline_entries=entries,
        timeline_keys=keys,
        timeline_bytes=costs.bytes_per_entry * entries + costs.bytes_per_key * keys,
        read_ms=sample(costs.read_ms + costs.merge_ms * read_merges),
        lag_ms=sample(costs.lag_ms + costs.lag_per_write_ms * post_writes[delivering]),
        cpu_seconds=cpu_ms / 1000,
        seconds=time.perf_counter() - started,
    )


def sweep(
    src: np.ndarray,
    dst: np.ndarray,
    nodes: int,
    trace: Trace,
    strategies: list[Strategy],
    costs: Calibration,
    timeline_max: int,
    outbox_max: int,
    ray_tasks: bool = True,
) -> list[Outcome]:
    """Every strategy over the same trace: one Ray task each (the ``Replay`` shared once), or in process."""
    shared = Replay.of(src, dst, nodes, trace)
    if not ray_tasks:
        return [replay(shared, s, costs, timeline_max, outbox_max) for s in strategies]
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                include_dashboard=False,
                log_to_driver=False,
                object_store_memory=max(300 * 2**20, int(shared.nbytes * 1.5) + 200 * 2**20),
            )
        except Exception as exc:  # a local Ray that cannot start (an overloaded machine): same figures, in process
            print(f"  model: Ray did not start ({exc}); running the strategies in this process", flush=True)
            return [replay(shared, s, costs, timeline_max, outbox_max) for s in strategies]
    try:
        task = ray.remote(num_cpus=1)(replay)
        ref = ray.put(shared)
        return ray.get([task.remote(ref, s, costs, timeline_max, outbox_max) for s in strategies])
    finally:
        if started_here:
            ray.shutdown()
