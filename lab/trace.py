"""The event trace: who posts, who reads, when; generated from a seed, saved, replayed by every strategy.

The activity model (``ActivitySpec``):

* a fraction of users is **active**: they read their home feed, so fan-out
  keeps their inboxes (the served code skips inactive users);
* **post weights** are heavy-tailed and correlated with audience: lognormal
  noise times ``(1 + followers) ** post_follower_exponent``;
* **read weights** (active users only): lognormal noise times
  ``(1 + following) ** read_following_exponent``;
* a **diurnal curve** ``1 + A·cos(2π(hour − peak)/24)`` spreads requests over
  the simulated span;
* the **request mix** draws each request's kind (home read, user timeline
  read, compose); a home read's reader is drawn by read weight, a compose's
  author by post weight, a user timeline read's profile by audience.

Absolute rates (per day) follow from the weights and the trace's size: an
author's post rate is their share of the trace's posts over its span. The
per-pair strategy compares those rates. The same experiment and seed give the
same trace, byte for byte (``Trace.digest``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from lab.experiment import ActivitySpec, MixSpec, TraceSpec

HOME, USER, POST = 0, 1, 2
KINDS = ("home", "user", "compose")
DIURNAL_BINS_PER_HOUR = 60


@dataclass(frozen=True)
class Trace:
    """Requests in time order, plus the per-user rates they were drawn from (dense user ids)."""

    t: np.ndarray  # float64, seconds of simulated time from the start
    kind: np.ndarray  # int8: HOME, USER, POST
    user: np.ndarray  # int32: who acts
    target: np.ndarray  # int32: the profile a user timeline read shows; -1 otherwise
    active: np.ndarray  # bool per user: reads, so their inbox is kept
    post_rate: np.ndarray  # float64 per user: posts per day
    read_rate: np.ndarray  # float64 per user: home reads per day
    span_seconds: float

    def __len__(self) -> int:
        return len(self.t)

    @property
    def posts(self) -> np.ndarray:
        return self.user[self.kind == POST]

    @property
    def home_readers(self) -> np.ndarray:
        return self.user[self.kind == HOME]

    def digest(self) -> str:
        """sha256 over every array: equal digests, equal traces."""
        h = hashlib.sha256()
        for f in fields(self):
            value = getattr(self, f.name)
            h.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else repr(value).encode())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **{f.name: np.asarray(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> Trace:
        with np.load(path) as data:
            values = {f.name: data[f.name] for f in fields(cls)}
        values["span_seconds"] = float(values["span_seconds"])
        return cls(**values)


def _draw(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """``size`` indexes drawn with probability ∝ ``weights``, in random order.

    The uniforms are sorted before the binary search (which then walks the cumulative sum in order instead
    of jumping around ten million entries), and the draws shuffled afterwards.
    """
    cdf = np.cumsum(weights, dtype=np.float64)
    drawn = np.searchsorted(cdf, np.sort(rng.random(size)) * cdf[-1], side="right").astype(np.int32)
    rng.shuffle(drawn)
    return drawn


def diurnal_times(rng: np.random.Generator, n: int, span_hours: float, amplitude: float, peak: float) -> np.ndarray:
    """``n`` sorted times (seconds) over the span, denser around the peak hour."""
    bins = max(1, int(span_hours * DIURNAL_BINS_PER_HOUR))
    width = span_hours * 3600 / bins
    start_hours = np.arange(bins) * width / 3600
    intensity = 1.0 + amplitude * np.cos(2 * np.pi * (start_hours + width / 7200 - peak) / 24)
    chosen = _draw(rng, intensity, n)
    return np.sort(chosen * width + rng.random(n) * width)


def generate(
    src: np.ndarray,
    dst: np.ndarray,
    nodes: int,
    activity: ActivitySpec,
    mix: MixSpec,
    spec: TraceSpec,
    seed: int,
) -> Trace:
    """The trace of an experiment on a graph whose edge ``i`` is ``src[i]`` follows ``dst[i]``."""
    rng = np.random.default_rng(seed)
    followers = np.bincount(dst, minlength=nodes)
    following = np.bincount(src, minlength=nodes)
    active = rng.random(nodes) < activity.active_fraction
    if not active.any():
        active[int(rng.integers(nodes))] = True
    post_weight = rng.lognormal(0.0, activity.post_sigma, nodes) * (1.0 + followers) ** activity.post_follower_exponent
    read_weight = (
        rng.lognormal(0.0, activity.read_sigma, nodes) * (1.0 + following) ** activity.read_following_exponent * active
    )
    kind = rng.choice(3, size=spec.ops, p=[mix.home, mix.user, mix.compose]).astype(np.int8)
    user = np.empty(spec.ops, dtype=np.int32)
    target = np.full(spec.ops, -1, dtype=np.int32)
    homes, users, posts = kind == HOME, kind == USER, kind == POST
    user[homes] = _draw(rng, read_weight, int(homes.sum()))
    user[users] = _draw(rng, read_weight, int(users.sum()))
    target[users] = _draw(rng, 1.0 + followers, int(users.sum()))
    user[posts] = _draw(rng, post_weight, int(posts.sum()))
    t = diurnal_times(rng, spec.ops, spec.span_hours, activity.diurnal_amplitude, activity.diurnal_peak_hour)
    days = spec.span_hours / 24
    post_rate = post_weight / post_weight.sum() * (spec.ops * mix.compose) / days
    read_rate = read_weight / read_weight.sum() * (spec.ops * mix.home) / days
    return Trace(t, kind, user, target, active, post_rate, read_rate, spec.span_hours * 3600)
