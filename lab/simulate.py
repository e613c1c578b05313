"""``raygram simulate EXPERIMENT.toml``: one experiment, start to finish, into one results folder.

The steps: read and resolve the experiment; build the graph (a file through
``lab.graphs.read_edge_list``, or ``lab.graphs.synthetic``); generate the
trace from the seed and save it; run the live strategies on an isolated
stack (``lab.live``) and calibrate the model from them; run every strategy
through the model (``lab.model``, Ray tasks) with that calibration (else the
experiment's or a saved ``calibration.json``); check model against live; write
the report (``lab.report``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from lab import live, model, report
from lab.experiment import Calibration, Experiment, load
from lab.strategies import Strategy, parse_all
from lab.trace import generate

OUTBOX_MAX = 800  # config.Settings.outbox_max: the stack's default, which the lab's stack keeps


def build_graph(experiment: Experiment):
    from lab.graphs import read_edge_list, synthetic

    spec = experiment.graph
    if spec.path:
        return read_edge_list(Path(spec.path), directed=spec.directed), Path(spec.path).name
    edges = synthetic(spec.synthetic_nodes, spec.exponent, experiment.seed, spec.mean_degree)
    return edges, f"synthetic power law (exponent {spec.exponent}, seed {experiment.seed})"


def model_strategies(experiment: Experiment) -> list[Strategy]:
    names = list(experiment.strategies.compare)
    names += [f"hybrid-{t}" for t in experiment.strategies.sweep if f"hybrid-{t}" not in names]
    return parse_all(names)


def base_calibration(experiment: Experiment) -> Calibration:
    if experiment.model.calibration:
        return Calibration.model_validate(json.loads(Path(experiment.model.calibration).read_text()))
    return experiment.calibration


def simulate(path: Path, results_root: Path) -> Path:
    """Run the experiment at ``path``; returns the report's path."""
    started = time.perf_counter()
    experiment = load(path)
    out = report.results_dir(results_root, experiment.name)
    edges, source = build_graph(experiment)
    graph_label = f"{source}: {edges.nodes:,} users, {len(edges):,} follows"
    print(f"simulate {experiment.name}: {graph_label} -> {out}", flush=True)
    trace = generate(
        edges.src, edges.dst, edges.nodes, experiment.activity, experiment.mix, experiment.trace, experiment.seed
    )
    trace.save(out / "trace.npz")
    costs = base_calibration(experiment)
    outcomes: list[model.Outcome] = []
    check: list[dict] = []
    timeline_max = experiment.live.timeline_max

    def model_of(name: str) -> model.Outcome:
        return model.simulate(
            edges.src, edges.dst, edges.nodes, trace, Strategy.parse(name), costs, timeline_max, OUTBOX_MAX
        )

    if experiment.runs_live:
        with tempfile.TemporaryDirectory(prefix="raygram-lab-") as state_dir:  # the stack's data goes with it
            live_outcomes, samples = live.run(experiment, edges, trace, Path(state_dir))
        outcomes += live_outcomes
        costs = live.calibrate(samples, live_outcomes, costs)
        check = live.check_calibration(samples, live_outcomes, model_of, costs)
        for row in check:
            print(
                f"  calibration {row['strategy']}: writes/post live {row['live_writes_per_post']} model "
                f"{row['model_writes_per_post']} ({row['writes_gap']:.1%}); read ms p50 live {row['live_read_ms_p50']} "
                f"model {row['model_read_ms']} ({row['read_gap']:.1%})",
                flush=True,
            )
    if experiment.runs_model:
        swept = time.perf_counter()
        outcomes += model.sweep(
            edges.src,
            edges.dst,
            edges.nodes,
            trace,
            model_strategies(experiment),
            costs,
            timeline_max,
            OUTBOX_MAX,
            ray_tasks=experiment.model.ray_tasks,
        )
        print(f"  model: {len(model_strategies(experiment))} strategies in {time.perf_counter() - swept:.1f}s")
    written = report.write_report(
        out, experiment, outcomes, check, costs, graph_label, time.perf_counter() - started, trace.digest()
    )
    print(f"report: {written} ({time.perf_counter() - started:.0f}s)", flush=True)
    return written
