"""``TrendsRefresher``: recomputes trending tags, trending posts and the explore pool on a timer.

Every ``trends_interval_seconds`` (Mastodon refreshes every five minutes) it
scores, with the pure functions of ``services.trends``:
  * the tags used by a public post in the last two days, plus those trending
    now: distinct accounts today and yesterday, one Redis round trip for all;
  * the posts liked or shared in the last two days, plus those trending now:
    their records in one graph query, their live like counts in one ``MGET``
    (one per slot on a Redis Cluster, where the posts' counters lie in many slots);
  * the newest ``explore_pool`` public posts with media, the same way;
and replaces the three rankings in Redis in one transaction (their keys share
the ``{discovery}`` hash tag, so a cluster keeps them in one slot). Requests only
read them (``services.explore``), so a trend costs nothing per request.

Work per refresh grows with the recent activity (candidates are capped at
``MAX_CANDIDATES``), not with all the posts there are. It runs as a task in
``StreamConsumers`` host 0 (``actors.stream``), whose process exists anyway;
if several hosts ran it, they would only compute the same thing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

from config import get_settings
from graph.driver import GraphClient
from graph.statuses import StatusGraph
from redis_store.client import redis_from
from redis_store.discovery import TRENDING_STATUSES, TRENDING_TAGS, DiscoveryStore
from services import trends

log = logging.getLogger("raygram.trends")
WINDOW_MS = 2 * 86_400_000  # how far back a tag's use or a post's interaction makes it a candidate
MAX_CANDIDATES = 5000


class TrendsRefresher:
    def __init__(self) -> None:
        settings = get_settings()
        self.interval = settings.trends_interval_seconds
        self.explore_pool = settings.explore_pool
        redis = redis_from(settings)
        self.store = DiscoveryStore(redis, settings.tag_timeline_max, settings.public_timeline_max)
        graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
        self.statuses = StatusGraph(graph)

    async def run(self) -> None:
        """Refresh until cancelled; a failed refresh is logged and tried again at the next tick."""
        while True:
            try:
                await self.refresh(int(time.time() * 1000))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trends refresh failed; will try again")
            await asyncio.sleep(self.interval)

    async def refresh(self, now_ms: int) -> None:
        tag_scores, peaks, expired = await self._tags(now_ms)
        status_ids = await self.store.status_candidates(now_ms - WINDOW_MS)
        status_ids += [int(m) for m in await self.store.ranked(TRENDING_STATUSES, 0, MAX_CANDIDATES)]
        explore_ids = await self.store.recent_media_posts(self.explore_pool)
        facts = await self._post_facts(list(dict.fromkeys(status_ids[-MAX_CANDIDATES:] + explore_ids)))
        status_scores = {i: trends.status_score(facts[i], now_ms) for i in status_ids if i in facts}
        explore_scores = {i: trends.explore_score(facts[i], now_ms) for i in explore_ids if i in facts}
        await self.store.publish_trends(
            {t: s for t, s in tag_scores.items() if s > 0},
            peaks,
            {i: s for i, s in status_scores.items() if s > 0},
            explore_scores,
            now_ms,
        )
        await self.store.forget_peaks(expired)

    async def _tags(self, now_ms: int) -> tuple[dict[str, float], dict[str, tuple[float, int]], list[str]]:
        """(scores, peaks to keep, peaks to forget) of the candidate tags."""
        names = await self.store.recent_tags(now_ms - WINDOW_MS)
        names = list(dict.fromkeys(names[-MAX_CANDIDATES:] + await self.store.ranked(TRENDING_TAGS, 0, 100)))
        history = await self.store.history(names, now_ms, days=2)
        previous = await self.store.tag_peaks(names)
        scores, peaks, expired = {}, {}, []
        for name in names:
            today, yesterday = history[name]
            trend = trends.tag_trend(today.accounts, yesterday.accounts, previous.get(name), now_ms)
            scores[name] = trend.score
            if trend.peak is not None:
                peaks[name] = trend.peak
            elif name in previous:
                expired.append(name)
        return scores, peaks, expired

    async def _post_facts(self, ids: list[int]) -> dict[int, trends.PostFacts]:
        records = await self.statuses.get_many(ids)
        live = await self.store.like_counts(list(records))
        return {
            i: trends.PostFacts(
                id=i,
                created_at=r["created_at"],
                favourites=live.get(i, int(r.get("favourites_count") or 0)),
                reblogs=int(r.get("reblogs_count") or 0),
                eligible=trends.is_trend_eligible(r),
                has_media=bool(r.get("media_ids")),
            )
            for i, r in records.items()
        }
