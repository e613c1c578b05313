"""Trend and explore scores: pure functions of counts and a clock, following Mastodon's trends.

Tags (Mastodon's ``Trends::Tags``): a tag trends when more distinct accounts
used it today than the day before. ``expected`` is yesterday's accounts (at
least 1), ``observed`` today's; below ``TAG_THRESHOLD`` accounts, or not above
the expectation, the score is 0, else ``(observed - expected)² / expected``.
A tag keeps its peak score (for ``TAG_PEAK_COOLDOWN_MS``) and trends with the
peak halved every ``TAG_HALF_LIFE_MS`` since it was reached, while that stays
at least ``TAG_MIN_SCORE``.

Statuses (Mastodon's ``Trends::Statuses``): engagement is likes plus shares
(each counted once per account, so they are distinct interactions); under
``STATUS_THRESHOLD`` the score is 0, else ``(engagement - 1)²``, halved every
``STATUS_HALF_LIFE_MS`` of the post's age, kept while at least
``STATUS_MIN_SCORE``. Only public, top-level posts without content warnings
or sensitive media are eligible.

Explore: recent public posts with media by ``log2(2 + engagement)`` decayed
over ``EXPLORE_HALF_LIFE_MS``; the page itself shuffles the best of them a
little (``jittered``) so the grid is not the same on every visit.

``actors.trends`` recomputes these on a timer and stores them in Redis;
``tests/test_trends.py`` runs them on a scripted history with its own clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HOUR_MS = 3_600_000
TAG_THRESHOLD = 5
TAG_HALF_LIFE_MS = 4 * HOUR_MS
TAG_PEAK_COOLDOWN_MS = 48 * HOUR_MS
TAG_MIN_SCORE = 1.0
STATUS_THRESHOLD = 5
STATUS_HALF_LIFE_MS = 2 * HOUR_MS
STATUS_MIN_SCORE = 0.3
EXPLORE_HALF_LIFE_MS = 24 * HOUR_MS


def decay(score: float, age_ms: float, half_life_ms: float) -> float:
    return score * 0.5 ** (max(0.0, age_ms) / half_life_ms)


def growth_score(observed: float, expected: float, threshold: float) -> float:
    """Mastodon's surprise score: 0 unless ``observed`` reaches the threshold and exceeds ``expected``."""
    expected = expected or 1.0
    if expected > observed or observed < threshold:
        return 0.0
    return (observed - expected) ** 2 / expected


@dataclass(frozen=True)
class TagTrend:
    score: float  # what it trends with now (0: not trending)
    peak: tuple[float, int] | None  # the peak to keep: (score, when in ms), or None to forget it


def tag_trend(accounts_today: int, accounts_yesterday: int, peak: tuple[float, int] | None, now_ms: int) -> TagTrend:
    """A tag's trending score now, from its distinct accounts today and yesterday and its previous peak."""
    peak_score, peak_at = peak if peak and peak[1] >= now_ms - TAG_PEAK_COOLDOWN_MS else (0.0, now_ms)
    score = growth_score(accounts_today, accounts_yesterday, TAG_THRESHOLD)
    if score > peak_score:
        peak_score, peak_at = score, now_ms
    if peak_score == 0:
        return TagTrend(0.0, None)
    decayed = decay(peak_score, now_ms - peak_at, TAG_HALF_LIFE_MS)
    return TagTrend(decayed if decayed >= TAG_MIN_SCORE else 0.0, (peak_score, peak_at))


@dataclass(frozen=True)
class PostFacts:
    """What scoring needs to know of a post."""

    id: int
    created_at: int  # ms
    favourites: int
    reblogs: int
    eligible: bool  # public, not a reply or reblog, no content warning, not sensitive
    has_media: bool = False


def is_trend_eligible(record: Mapping) -> bool:
    """Mastodon's rule for a post that may trend (by its graph record)."""
    return (
        record.get("visibility") == "public"
        and record.get("in_reply_to_id") is None
        and record.get("reblog_of_id") is None
        and not record.get("spoiler_text")
        and not record.get("sensitive")
    )


def status_score(post: PostFacts, now_ms: int) -> float:
    """A post's trending score now (0: not trending)."""
    if not post.eligible:
        return 0.0
    score = growth_score(post.favourites + post.reblogs, 1.0, STATUS_THRESHOLD)
    decayed = decay(score, now_ms - post.created_at, STATUS_HALF_LIFE_MS)
    return decayed if decayed >= STATUS_MIN_SCORE else 0.0


def explore_score(post: PostFacts, now_ms: int) -> float:
    """Engagement with diminishing returns, fading over a day; every recent photo post has a place."""
    return decay(math.log2(2 + post.favourites + post.reblogs), now_ms - post.created_at, EXPLORE_HALF_LIFE_MS)


def jittered(ranked: Iterable[int], rng: random.Random, spread: float = 0.5) -> list[int]:
    """A ranking shuffled a little: each item's rank moves by a random factor of up to ``1 + spread``."""
    return [item for _, item in sorted((rank * (1 + spread * rng.random()), item) for rank, item in enumerate(ranked))]
