"""The simulation lab (``raygram simulate``): seeded traces, counted figures, live figures from the real stores.

A hand-built graph makes every count checkable by hand: six users, where

* user 0 is followed by 1, 2, 3, 4 and 5 (5 never reads: inactive),
* user 1 by 0 and 2, user 2 by 3,

and users 0, 0, 1 and 2 post once each. Pushed, those posts write 4 + 4 + 2 + 1 = 11
inbox entries (the inactive follower gets none); pulled, none; at a celebrity
threshold of 3 followers only user 0 is pulled, so 2 + 1 = 3.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis

from lab import live, model, report
from lab.experiment import ActivitySpec, Calibration, Experiment, ExperimentError, MixSpec, TraceSpec, load
from lab.graphs import EdgeList, synthetic
from lab.strategies import Strategy
from lab.trace import HOME, POST, USER, Trace, generate
from redis_store.timelines import outbox_key, reblogs_key, timeline_key

# src follows dst
SRC = np.array([1, 2, 3, 4, 5, 0, 2, 3], dtype=np.int32)
DST = np.array([0, 0, 0, 0, 0, 1, 1, 2], dtype=np.int32)
NODES = 6
ACTIVE = np.array([True, True, True, True, True, False])
PUSH_WRITES, HYBRID_WRITES = 11, 3  # module docstring
POSTS = 4


def hand_trace() -> Trace:
    """Four posts (0, 0, 1, 2), home reads by every active user, one profile read; one second apart."""
    kind = [POST, HOME, POST, HOME, POST, HOME, POST, HOME, HOME, USER]
    user = [0, 1, 0, 2, 1, 3, 2, 4, 0, 3]
    target = [-1] * 9 + [0]
    rates = np.ones(NODES)
    return Trace(
        t=np.arange(len(kind), dtype=np.float64),
        kind=np.array(kind, dtype=np.int8),
        user=np.array(user, dtype=np.int32),
        target=np.array(target, dtype=np.int32),
        active=ACTIVE,
        post_rate=rates,
        read_rate=rates * ACTIVE,
        span_seconds=float(len(kind)),
    )


def modelled(strategy: str, trace: Trace) -> model.Outcome:
    return model.simulate(SRC, DST, NODES, trace, Strategy.parse(strategy), Calibration(), 800, 800)


def test_same_seed_same_trace_and_same_counted_figures() -> None:
    edges = synthetic(3000, 2.1, seed=5, mean_degree=8)
    spec = TraceSpec(ops=5000)

    def run(seed: int) -> tuple[Trace, list[tuple[int, int, int]]]:
        trace = generate(edges.src, edges.dst, edges.nodes, ActivitySpec(), MixSpec(), spec, seed)
        outcomes = model.sweep(
            edges.src, edges.dst, edges.nodes, trace, [Strategy.parse(s) for s in ("push", "hybrid-50", "per-pair")],
            Calibration(), 800, 800, ray_tasks=False,
        )  # fmt: skip
        return trace, [(o.writes, o.merges, o.timeline_entries) for o in outcomes]

    first, figures = run(1)
    again, figures_again = run(1)
    other, _ = run(2)
    assert first.digest() == again.digest() and figures == figures_again
    assert first.digest() != other.digest()
    assert figures[0][0] > figures[1][0] > 0  # the hybrid pushes less than push-only
    kinds = np.bincount(first.kind, minlength=3) / len(first)
    assert abs(kinds[HOME] - 0.6) < 0.03 and abs(kinds[USER] - 0.3) < 0.03 and abs(kinds[POST] - 0.1) < 0.03
    assert first.active[first.home_readers].all()  # home reads come from active users only


def test_saved_trace_loads_identical(tmp_path: Path) -> None:
    trace = hand_trace()
    trace.save(tmp_path / "trace.npz")
    assert Trace.load(tmp_path / "trace.npz").digest() == trace.digest()


def test_model_counts_writes_from_follower_counts() -> None:
    trace = hand_trace()
    assert modelled("push", trace).writes == PUSH_WRITES
    pulled = modelled("pull", trace)
    assert pulled.writes == 0 and pulled.outbox_appends == POSTS
    assert pulled.merges == 1 + 2 + 2 + 1 + 1  # readers 1, 2, 3, 4, 0 follow 1, 2, 2, 1, 1 authors
    hybrid = modelled("hybrid-3", trace)
    assert hybrid.writes == HYBRID_WRITES and hybrid.outbox_appends == 2


def test_per_pair_pushes_where_the_follower_reads_more_than_the_author_posts() -> None:
    trace = hand_trace()
    read_rate = np.array([5.0, 5.0, 0.5, 5.0, 0.5, 0.0])
    post_rate = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    trace = Trace(**{**trace.__dict__, "read_rate": read_rate, "post_rate": post_rate})
    # Pushed pairs (follower reads 5 a day > author posts 1): 1->0, 3->0, 0->1, 3->2; 2 and 4 read too little
    # (0.5 a day), 5 never. Writes: posts by 0 (twice) reach 1 and 3; the post by 1 reaches 0; by 2, 3.
    pair = modelled("per-pair", trace)
    assert pair.writes == 2 * 2 + 1 + 1
    assert pair.merges == 0 + 2 + 0 + 1 + 0  # home reads by 1, 2, 3, 4, 0: the pulled authors each follows


def test_experiment_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[graph]\nsynthetic_nodes = 10\n[strategies]\ncompare = ["push", "sideways"]\n')
    with pytest.raises(ExperimentError, match=r"strategies\.compare"):
        load(bad)
    bad.write_text('name = "x"\n[graph]\nsynthetic_nodes = 10\nsynthetic_node = 3\n')
    with pytest.raises(ExperimentError, match="synthetic_node"):
        load(bad)
    bad.write_text('name = "x"\nmodes = ["live"]\n[graph]\nsynthetic_nodes = 10\n[strategies]\nlive = ["per-pair"]\n')
    with pytest.raises(ExperimentError, match="model mode only"):
        load(bad)


def test_model_only_run_writes_a_complete_results_folder(tmp_path: Path) -> None:
    from lab.simulate import simulate

    experiment = tmp_path / "tiny.toml"
    experiment.write_text(
        'name = "tiny"\nseed = 3\n[graph]\nsynthetic_nodes = 2000\n[trace]\nops = 3000\n'
        '[strategies]\ncompare = ["push", "pull", "hybrid-30", "per-pair"]\nsweep = [10, 100]\n'
        "[model]\nray_tasks = false\n"
    )
    written = simulate(experiment, tmp_path / "results")
    folder = written.parent
    for name in ("results.csv", "trace.npz", "experiment.json", "environment.json", "calibration.json", *report.PLOTS):
        assert (folder / name).stat().st_size > 0, name
    resolved = Experiment.model_validate_json((folder / "experiment.json").read_text())
    assert resolved.trace.ops == 3000 and resolved.mix.home == 0.6  # defaults filled in
    assert json.loads((folder / "environment.json").read_text())["cpus"]
    text = written.read_text()
    assert "push-only costs" in text and "![" in text


@pytest.fixture(scope="module")
def hand_population(stack) -> live.Population:
    """The hand-built graph imported into the session stack (accounts of its own), with tokens for every user."""
    order = np.lexsort((DST, SRC))  # an EdgeList is sorted by (follower, followee)
    edges = EdgeList(SRC[order], DST[order], NODES, [], np.arange(NODES, dtype=np.int64))
    settings = stack.settings
    account_ids = asyncio.run(live.import_population(settings, edges, f"sim{uuid.uuid4().hex[:8]}_"))
    tokens = asyncio.run(live.issue_tokens(settings, account_ids, range(NODES)))
    return live.Population(account_ids, edges.src, edges.dst, tokens)


def test_live_figures_are_read_from_the_stores(stack, hand_population: live.Population) -> None:
    trace = hand_trace()
    strategies = [Strategy.parse(s) for s in ("pull", "hybrid-3", "push")]
    outcomes, samples = asyncio.run(
        live.run_strategies(stack.settings, hand_population, trace, strategies, rate=20, settle=30)
    )
    pull, hybrid, push = outcomes
    assert (push.writes, hybrid.writes, pull.writes) == (PUSH_WRITES, HYBRID_WRITES, 0)
    assert pull.outbox_appends == POSTS and push.outbox_appends == 0
    for outcome in outcomes:
        assert outcome.writes == modelled(outcome.strategy, trace).writes  # the model counts what the stores hold
        assert outcome.merges == modelled(outcome.strategy, trace).merges
        assert len(samples[outcome.strategy].read_ms) == 5 and samples[outcome.strategy].errors == 0
        assert len(outcome.lag_ms) == POSTS  # every post reached every active follower (or its outbox)
    # The last strategy's timelines are still in Redis: the figures are what it holds now.
    direct = redis.Redis.from_url(stack.settings.redis_url)
    try:
        ids = [int(a) for a in hand_population.account_ids]
        keys = [k for u in ids for k in (timeline_key(u), reblogs_key(u), outbox_key(u)) if direct.exists(k)]
        assert push.timeline_bytes == sum(direct.memory_usage(k, samples=0) for k in keys) > 0
        assert sum(direct.zcard(timeline_key(u)) for u in ids) == push.timeline_entries
    finally:
        direct.close()


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "experiments").glob("*.toml")), ids=str)
def test_example_experiments_are_valid(path: Path) -> None:
    """The shipped experiments validate (their graph files live outside the repository, so paths are not checked)."""
    experiment = Experiment.model_validate(tomllib.loads(path.read_text()))
    assert experiment.strategies.compare
