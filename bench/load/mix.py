"""The request mix and the open-loop schedule: what is sent, by whom, and when, decided before the run.

A schedule is a list of ``Op``s, each due at a fixed offset from the start,
drawn from a seeded generator: Poisson arrivals (exponential gaps) at the
offered rate, or a fixed interval. Because the times are fixed in advance, a
slow server cannot slow the sender down (no coordinated omission): the runner
launches each op when it is due whatever is still outstanding, and measures
its latency from the due time.

Who acts is drawn from the population's weights: readers by the reader Zipf
(hot and cold users), posters, likers and followers by the poster Zipf, and
profile targets by popularity. Whether a post carries a photo is decided
here too, so the photo pool can be uploaded before the run
(``photos_needed``). Like and follow targets depend on what the run has
acknowledged so far, so the runner picks them when the op is launched.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate

from bench.load.population import PopulationPlan

KINDS = ("home", "profile", "post", "like", "follow")
WRITES = ("post", "like", "follow")


@dataclass(frozen=True)
class Mix:
    """Relative weights of the request kinds (DeathStarBench's social network: 60/30/10, plus likes and follows).

    Weights need not sum to 100; each kind's share is its weight over the total.
    """

    home: float = 60.0  # GET /api/v1/timelines/home
    profile: float = 30.0  # GET /api/v1/accounts/:id/statuses
    post: float = 10.0  # POST /api/v1/statuses (a third with a photo)
    like: float = 6.0  # POST /api/v1/statuses/:id/favourite
    follow: float = 2.0  # POST /api/v1/accounts/:id/follow
    photo_share: float = 1 / 3  # of posts

    def weights(self) -> list[float]:
        return [self.home, self.profile, self.post, self.like, self.follow]

    def shares(self) -> dict[str, float]:
        total = sum(self.weights())
        return {kind: weight / total for kind, weight in zip(KINDS, self.weights(), strict=True)}


@dataclass(frozen=True, slots=True)
class Op:
    seq: int
    at: float  # seconds after the run's start at which it is due
    kind: str  # one of KINDS
    user: int  # the acting member's index
    target: int | None = None  # profile read: whose profile (member index)
    photo: bool = False  # post: attach a photo from the pool


def plan_schedule(
    plan: PopulationPlan,
    mix: Mix,
    rate: float,
    duration: float,
    *,
    seed: int = 1,
    arrivals: str = "poisson",
    start_seq: int = 0,
) -> list[Op]:
    """``rate`` ops per second for ``duration`` seconds; ``arrivals`` is ``"poisson"`` or ``"fixed"``."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    if arrivals not in ("poisson", "fixed"):
        raise ValueError("arrivals must be 'poisson' or 'fixed'")
    rng = random.Random(seed)
    users = range(plan.users)
    readers = list(accumulate(plan.reader_weights))
    actors = list(accumulate(plan.poster_weights))
    popular = list(accumulate(plan.popularity))
    kinds = list(accumulate(mix.weights()))
    ops: list[Op] = []
    t = 0.0
    seq = start_seq
    while True:
        t += rng.expovariate(rate) if arrivals == "poisson" else 1.0 / rate
        if t >= duration:
            return ops
        kind = rng.choices(KINDS, cum_weights=kinds)[0]
        if kind == "home":
            ops.append(Op(seq, t, kind, rng.choices(users, cum_weights=readers)[0]))
        elif kind == "profile":
            reader = rng.choices(users, cum_weights=readers)[0]
            ops.append(Op(seq, t, kind, reader, target=rng.choices(users, cum_weights=popular)[0]))
        elif kind == "post":
            author = rng.choices(users, cum_weights=actors)[0]
            ops.append(Op(seq, t, kind, author, photo=rng.random() < mix.photo_share))
        else:
            ops.append(Op(seq, t, kind, rng.choices(users, cum_weights=actors)[0]))
        seq += 1


def photos_needed(*schedules: list[Op]) -> Counter[int]:
    """Member index -> photos the schedules will attach: the pool ``upload_photos`` must make first."""
    return Counter(op.user for schedule in schedules for op in schedule if op.kind == "post" and op.photo)
