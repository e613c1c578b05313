"""A run's results folder: the table, the trace, the resolved experiment, the environment, plots and report.md.

Everything needed to read or redo a run sits in one folder
(``results/<name>-<UTC time>/``): ``results.csv`` (one row per strategy and
mode), ``trace.npz`` (``lab.trace.Trace.load``), ``experiment.json`` (the
experiment as resolved: absolute paths, every default), ``environment.json``
(versions, machine, load, commit), ``calibration.json`` and
``calibration_check.csv`` when something ran live, four PNGs and
``report.md``, which puts them together with a paragraph generated from the
numbers. docs/lab.md says what each figure means.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from lab.experiment import Calibration, Experiment
from lab.model import Outcome
from lab.strategies import Strategy

PLOTS = {
    "writes_vs_threshold.png": "Timeline writes per post against the celebrity threshold",
    "memory_vs_threshold.png": "Timeline memory against the celebrity threshold",
    "lag_cdf.png": "Delivery lag (post acknowledged → in every active follower's feed), CDF per strategy",
    "read_cdf.png": "Home-read latency, CDF per strategy",
}


def results_dir(root: Path, name: str) -> Path:
    path = root / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def environment() -> dict[str, object]:
    """Versions, machine and commit: what a reader needs to judge or redo the figures."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    packages = {}
    for name in ("raygram", "numpy", "ray", "redis", "neo4j", "matplotlib", "pydantic"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "python": sys.version.split()[0],
        "packages": packages,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_table(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _threshold(name: str) -> int | None:
    return Strategy.parse(name).threshold if name.startswith("hybrid-") else None


def plot(out: Path, outcomes: list[Outcome], graph_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def by_threshold(metric, ylabel: str, filename: str) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for mode, marker, style in (("model", "o", "-"), ("live", "s", "none")):
            hybrid = sorted(
                (_threshold(o.strategy), metric(o)) for o in outcomes if o.mode == mode and _threshold(o.strategy)
            )
            if hybrid:
                ax.plot(*zip(*hybrid, strict=True), marker=marker, linestyle=style, label=f"hybrid ({mode})")
        colors = {"push": "tab:red", "pull": "tab:green", "per-pair": "tab:purple"}
        for o in outcomes:
            if o.strategy in colors:
                line = "--" if o.mode == "model" else ":"
                ax.axhline(metric(o), color=colors[o.strategy], linestyle=line, label=f"{o.strategy} ({o.mode})")
        ax.set_xscale("log")
        ax.set_xlabel("celebrity threshold (followers)")
        ax.set_ylabel(ylabel)
        ax.set_title(graph_label, fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / filename, dpi=110)
        plt.close(fig)

    def cdf(values_of, xlabel: str, filename: str) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for o in outcomes:
            values = np.sort(values_of(o))
            if len(values) and (o.mode == "live" or not o.strategy.startswith("hybrid-") or len(outcomes) < 12):
                style = "-" if o.mode == "live" else "--"
                ax.plot(values, np.arange(1, len(values) + 1) / len(values), style, label=f"{o.strategy} ({o.mode})")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction")
        ax.set_title(graph_label, fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / filename, dpi=110)
        plt.close(fig)

    by_threshold(lambda o: o.writes_per_post, "inbox writes per post", "writes_vs_threshold.png")
    by_threshold(lambda o: o.timeline_bytes / 2**20, "timeline memory (MiB)", "memory_vs_threshold.png")
    cdf(lambda o: o.lag_ms, "delivery lag (ms)", "lag_cdf.png")
    cdf(lambda o: o.read_ms, "home-read latency (ms)", "read_cdf.png")


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def reading(outcomes: list[Outcome], check: list[dict], graph_label: str, compared: list[str]) -> str:
    """One paragraph saying what the numbers say, generated from them (live figures where a strategy ran live)."""
    named = {o.strategy: o for o in outcomes if o.mode == "model"}
    named.update({o.strategy: o for o in outcomes if o.mode == "live"})

    def p99(o: Outcome) -> float:
        return float(np.percentile(o.read_ms, 99)) if len(o.read_ms) else float("nan")

    parts = []
    push, pull = named.get("push"), named.get("pull")
    if push:
        parts.append(
            f"push-only costs {push.writes_per_post:.1f} timeline writes per post and its home reads merge "
            f"nothing (read p99 {p99(push):.1f} ms, delivery lag p99 {np.percentile(push.lag_ms, 99):.0f} ms, "
            f"{push.mode})"
        )
    if pull:
        parts.append(
            f"pull-only writes none, but every home read merges {pull.merges_per_read:.1f} outboxes "
            f"(read p99 {p99(pull):.1f} ms, {pull.mode})"
        )
    push_by_mode = {o.mode: o for o in outcomes if o.strategy == "push"}
    for name in compared:
        o = named.get(name)
        base = push_by_mode.get(o.mode) if o and name.startswith("hybrid-") else None
        if base and base.writes_per_post and base.timeline_bytes:
            parts.append(
                f"{o.strategy} keeps {o.writes_per_post / base.writes_per_post:.0%} of push's writes "
                f"({o.writes_per_post:.1f} per post) for {o.merges_per_read:.2f} merges per read, timelines "
                f"{o.timeline_bytes / base.timeline_bytes:.0%} of push's memory ({o.mode})"
            )
    pair = named.get("per-pair")
    if pair:
        parts.append(
            f"Feeding Frenzy's per-pair rule writes {pair.writes_per_post:.1f} per post and merges "
            f"{pair.merges_per_read:.2f} per read (model)"
        )
    text = f"On {graph_label}, " + "; ".join(parts) + "."
    if check:
        worst_w = max(r["writes_gap"] for r in check) * 100
        worst_r = max(r["read_gap"] for r in check) * 100
        verdict = "within" if max(worst_w, worst_r) <= 15 else "outside"
        text += (
            f" Model and live agree to {worst_w:.1f} % on writes per post and {worst_r:.1f} % on home-read cost "
            f"(median) at worst, {verdict} the 15 % within which the model's figures are trusted."
        )
    return text


def write_report(
    out: Path,
    experiment: Experiment,
    outcomes: list[Outcome],
    check: list[dict],
    calibration: Calibration,
    graph_label: str,
    seconds: float,
    trace_digest: str,
) -> Path:
    rows = [o.row() for o in outcomes]
    write_table(out / "results.csv", rows)
    write_table(out / "calibration_check.csv", check)
    (out / "experiment.json").write_text(experiment.model_dump_json(indent=2))
    (out / "calibration.json").write_text(calibration.model_dump_json(indent=2))
    (out / "environment.json").write_text(json.dumps(environment(), indent=2))
    plot(out, outcomes, graph_label)
    shown = ["strategy", "mode", "writes_per_post", "merges_per_read", "read_ms_p50", "read_ms_p99", "lag_ms_p50"]
    shown += ["lag_ms_p99", "lag_ms_max", "timeline_mb", "cpu_s_per_1k_ops"]
    lines = [
        f"# {experiment.name}",
        "",
        f"{graph_label}; {len(outcomes)} runs; seed {experiment.seed}; trace sha256 `{trace_digest[:16]}…`; "
        f"{seconds:.0f} s in all.",
        "",
        reading(outcomes, check, graph_label, experiment.strategies.compare),
        "",
        "## Results",
        "",
        _markdown_table([{k: r[k] for k in shown} for r in rows]),
        "",
    ]
    if check:
        lines += ["## Calibration check (model against live)", "", _markdown_table(check), ""]
    for filename, title in PLOTS.items():
        lines += [f"## {title}", "", f"![{title}]({filename})", ""]
    lines += [
        "Files: `results.csv` (every figure), `trace.npz`, `experiment.json` (resolved), `calibration.json` "
        "(the model's unit costs), `environment.json`. How to read them: docs/lab.md.",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
