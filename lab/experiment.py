"""An experiment file (TOML) as pydantic models: one reproducible simulation, validated and resolved.

The file says which graph, which activity model, how long a trace, which
strategies to compare and in which modes (live, model). ``load`` validates it
(unknown keys are errors, so a typo is not silently a default) and resolves
it: the graph path becomes absolute, every default is filled in. The resolved
experiment is saved with the results (``experiment.json``), so a results
folder says exactly what produced it. docs/lab.md documents every field.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

STRATEGY = re.compile(r"^(push|pull|per-pair|hybrid-(\d+))$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GraphSpec(Strict):
    """A graph file (SNAP / Network Repository edge list, CSV, ``.mtx``, gzip) or a synthetic power law."""

    path: str = ""  # relative to the experiment file
    directed: bool = False  # false: every line is a mutual friendship, a follow each way
    synthetic_nodes: int = Field(0, ge=0)
    exponent: float = Field(2.1, gt=1.0)
    mean_degree: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def one_source(self) -> GraphSpec:
        if bool(self.path) == bool(self.synthetic_nodes):
            raise ValueError("give exactly one of graph.path and graph.synthetic_nodes")
        return self


class ActivitySpec(Strict):
    """Who posts and reads how often (rates are relative; the trace's size sets the absolute level)."""

    active_fraction: float = Field(0.5, gt=0, le=1)  # users who read: their inboxes are kept
    post_follower_exponent: float = Field(0.5, ge=0)  # post weight ∝ (1 + followers) ** this
    post_sigma: float = Field(1.0, ge=0)  # lognormal spread of post weights (heavy tail)
    read_following_exponent: float = Field(0.3, ge=0)  # read weight ∝ (1 + following) ** this
    read_sigma: float = Field(0.8, ge=0)
    diurnal_amplitude: float = Field(0.6, ge=0, lt=1)  # intensity 1 ± this over the day
    diurnal_peak_hour: float = Field(20.0, ge=0, lt=24)


class MixSpec(Strict):
    """The request mix; DeathStarBench's social network: 60 % home read, 30 % user timeline, 10 % compose."""

    home: float = Field(0.6, ge=0)
    user: float = Field(0.3, ge=0)
    compose: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def sums_to_one(self) -> MixSpec:
        if abs(self.home + self.user + self.compose - 1.0) > 1e-6:
            raise ValueError("mix.home + mix.user + mix.compose must be 1")
        return self


class TraceSpec(Strict):
    ops: int = Field(1000, gt=0)  # requests in the trace
    span_hours: float = Field(24.0, gt=0)  # simulated time the trace covers (the diurnal curve's clock)


class StrategiesSpec(Strict):
    """What to compare. Names: ``push``, ``pull``, ``hybrid-T`` (celebrity at T followers), ``per-pair``."""

    compare: list[str] = ["push", "pull", "hybrid-100", "per-pair"]
    live: list[str] = []  # which of ``compare`` also run live (per-pair cannot: see lab.strategies)
    sweep: list[int] = []  # extra hybrid thresholds, model only (the threshold plots)

    @field_validator("compare", "live")
    @classmethod
    def known(cls, names: list[str]) -> list[str]:
        for name in names:
            if not STRATEGY.match(name):
                raise ValueError(f"unknown strategy {name!r}: push, pull, per-pair or hybrid-<followers>")
        return names

    @model_validator(mode="after")
    def live_is_compared(self) -> StrategiesSpec:
        if "per-pair" in self.live:
            raise ValueError("per-pair runs in model mode only: the served fan-out decides per author, not per pair")
        missing = [name for name in self.live if name not in self.compare]
        if missing:
            raise ValueError(f"strategies.live names strategies not in strategies.compare: {missing}")
        return self


class LiveSpec(Strict):
    rate: float = Field(20.0, gt=0)  # requests per second offered to the stack (open loop)
    settle_seconds: float = Field(30.0, gt=0)  # how long fan-out may take to finish after the last post
    timeline_max: int = Field(100_000, gt=0)  # inbox cap of the lab's stack: large, so writes are not trimmed away


class Calibration(Strict):
    """Unit costs of the model. Measured by a live run (``calibration.json`` in its results); these defaults
    are one such measurement on a 2-core machine, used when an experiment has no live part."""

    read_ms: float = 6.0  # a home read with nothing to merge
    merge_ms: float = 0.05  # each followed outbox merged into a home read
    user_read_ms: float = 8.0  # a user timeline read
    post_ms: float = 12.0  # a compose request
    lag_ms: float = 15.0  # delivery lag of a post with nothing to push (outbox append)
    lag_per_write_ms: float = 0.02  # delivery lag added per inbox written
    bytes_per_entry: float = 60.0  # Redis memory per timeline entry
    bytes_per_key: float = 90.0  # Redis memory per timeline key
    cpu_per_op_ms: float = 20.0  # CPU of the whole stack per request
    cpu_per_write_ms: float = 0.02  # CPU per inbox written
    cpu_per_merge_ms: float = 0.01  # CPU per outbox merged


class ModelSpec(Strict):
    calibration: str = ""  # a calibration.json to use when nothing runs live (relative to the experiment file)
    ray_tasks: bool = True  # one Ray task per strategy (a local Ray, or RAY_ADDRESS's cluster)


class Experiment(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    modes: list[Literal["live", "model"]] = ["model"]
    graph: GraphSpec
    activity: ActivitySpec = ActivitySpec()
    mix: MixSpec = MixSpec()
    trace: TraceSpec = TraceSpec()
    strategies: StrategiesSpec = StrategiesSpec()
    live: LiveSpec = LiveSpec()
    model: ModelSpec = ModelSpec()
    calibration: Calibration = Calibration()

    @model_validator(mode="after")
    def live_has_strategies(self) -> Experiment:
        if "live" in self.modes and not self.strategies.live:
            raise ValueError("modes has 'live' but strategies.live is empty")
        return self

    @property
    def runs_live(self) -> bool:
        return "live" in self.modes

    @property
    def runs_model(self) -> bool:
        return "model" in self.modes


class ExperimentError(ValueError):
    """The experiment file is missing, not TOML, or not a valid experiment; the message says where."""


def load(path: Path) -> Experiment:
    """Read, validate and resolve an experiment file (relative paths become absolute)."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ExperimentError(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{path}: not valid TOML: {exc}") from exc
    try:
        experiment = Experiment.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()]
        raise ExperimentError(f"{path}: " + "; ".join(lines)) from exc
    return resolve(experiment, path.parent)


def resolve(experiment: Experiment, base: Path) -> Experiment:
    """Paths relative to ``base`` (the experiment file's folder) made absolute, and checked to exist."""
    updates: dict = {}
    if experiment.graph.path:
        graph_path = (base / experiment.graph.path).resolve()
        if not graph_path.exists():
            raise ExperimentError(f"graph.path: {graph_path} does not exist")
        updates["graph"] = experiment.graph.model_copy(update={"path": str(graph_path)})
    if experiment.model.calibration:
        updates["model"] = experiment.model.model_copy(
            update={"calibration": str((base / experiment.model.calibration).resolve())}
        )
    return experiment.model_copy(update=updates)
