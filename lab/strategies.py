"""Fan-out strategies as decisions per follow edge: is this follower's copy pushed or pulled?

Push-only, pull-only and hybrid are thresholds of the served hybrid fan-out
(``config.Settings.celebrity_threshold``): an author with at least T followers
is a celebrity, whose posts go to one outbox that every follower's read merges;
everyone else's posts are pushed to each active follower's inbox. Push-only is a
threshold above every follower count, pull-only a threshold of one follower.

Feeding Frenzy's per-pair rule (Silberstein et al., SIGMOD 2010) decides per
(follower, author) pair instead: push when the follower reads more often than
the author posts (the copy will be read), pull otherwise. The served fan-out
decides per author (one outbox or one push pass per post), so this rule runs in
model mode only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.experiment import STRATEGY


@dataclass(frozen=True)
class Strategy:
    name: str
    threshold: int | None  # followers at which an author is pulled; None: per pair

    @classmethod
    def parse(cls, name: str) -> Strategy:
        match = STRATEGY.match(name)
        if match is None:
            raise ValueError(f"unknown strategy {name!r}")
        if name == "push":
            return cls(name, 2**62)
        if name == "pull":
            return cls(name, 1)
        if name == "per-pair":
            return cls(name, None)
        return cls(name, int(match.group(2)))

    @property
    def per_pair(self) -> bool:
        return self.threshold is None

    @property
    def live_capable(self) -> bool:
        return not self.per_pair

    def celebrities(self, followers: np.ndarray) -> np.ndarray:
        """Per author: pulled (a celebrity) under this threshold; what the served code decides at a follow."""
        if self.threshold is None:
            raise ValueError("per-pair decides per follow edge, not per author")
        return followers >= self.threshold

    def pulled_edges(
        self, src: np.ndarray, dst: np.ndarray, followers: np.ndarray, post_rate: np.ndarray, read_rate: np.ndarray
    ) -> np.ndarray:
        """Per follow edge (``src`` follows ``dst``): True where the follower pulls the author's posts."""
        if self.threshold is None:
            return ~(read_rate[src] > post_rate[dst])
        return self.celebrities(followers)[dst]


def parse_all(names: list[str]) -> list[Strategy]:
    return [Strategy.parse(name) for name in names]
