"""``StreamConsumers``: one process for the event stream's consumers (fan-out, notifier, like persister,
discovery and search indexers) and the trends timer.

Host 0 also runs the story expiry timer (``actors.story_expiry``), which needs no process of its own either.

The fan-out consumers (``actors.fanout``), the notifier (``actors.notifier``),
the like persister (``actors.persister``), the discovery indexer
(``actors.discovery``) and the trends refresh (``actors.trends``) each wait
on Redis and the graph nearly all the time, so one event loop carries them
all, each loop a task of its own. A process per consumer cost a Ray worker process apiece,
and every one that talks to the graph loads the ``neo4j`` driver, whose
import alone builds about 30 MB of lookup tables: about 95 MB per process
(``bench/footprint.py``). ``CONSUMER_HOSTS`` spreads the fan-out consumers
over more processes; the notifier, the like persister and the discovery and
search indexers, one consumer each because each group must be consumed in
order, run on host 0, with the trends timer and the sampler of Redis' gauges
(``actors.sampler``). Host 0 also answers status searches: the search indexer
owns the index file (``actors.search``), so queries come to it, one actor call
each.

Killing the process stops every consumer it runs; Ray restarts the actor
(``max_restarts=-1``) and each consumer first finishes the events it had
taken (``actors.consumer``).
"""

from __future__ import annotations

import asyncio

import ray

from actors.discovery import DiscoveryIndexer
from actors.fanout import FanoutWorker
from actors.notifier import Notifier
from actors.persister import LikePersister
from actors.post_index import StatusQuery
from actors.registry import DISCOVERY, LIKE_PERSISTER, NOTIFIER, SEARCH_INDEXER, fanout_name, layout_of
from actors.sampler import StoreSampler
from actors.search import SearchIndexer
from actors.story_expiry import StoryExpirer
from actors.trends import TrendsRefresher

Consumer = (
    FanoutWorker | Notifier | LikePersister | SearchIndexer | DiscoveryIndexer | TrendsRefresher | StoryExpirer
) | StoreSampler


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class StreamConsumers:
    async def __init__(self, fanout_consumers: list[int], interactions: bool) -> None:
        """Runs the fan-out consumers ``fanout_consumers`` and, if ``interactions``, the notifier, the persister,
        the discovery and search indexers and the timers."""
        self.names = [fanout_name(i) for i in fanout_consumers]
        self.fanout = FanoutWorker(fanout_consumers)
        self.search: SearchIndexer | None = None
        consumers: list[Consumer] = [self.fanout]
        if interactions:  # and the timers and the metrics' Redis sampler (actors.sampler), one per stack like them
            self.search = SearchIndexer(SEARCH_INDEXER)
            consumers += [await Notifier.create(NOTIFIER), LikePersister(LIKE_PERSISTER), self.search]
            consumers += [DiscoveryIndexer(DISCOVERY), TrendsRefresher()]
            consumers += [StoryExpirer.create(self.fanout.settings), StoreSampler.create()]
            self.names += [NOTIFIER, LIKE_PERSISTER, SEARCH_INDEXER, DISCOVERY]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(consumer.run()) for consumer in consumers]

    async def ping(self) -> list[str]:
        return self.names

    async def layout(self) -> dict[str, int]:
        """The counts this process was started with (``actors.registry.replace_stale_hosts``)."""
        return layout_of(self.fanout.settings)

    async def fan_out(self, status_id: int, author_id: int) -> None:
        """Fan one post out now, outside the stream (``bench/feed_bench.py`` times it)."""
        await self.fanout.feed.distribute(status_id, author_id)

    async def search_statuses(self, query: StatusQuery) -> list[int]:
        """Ids of the posts matching ``query`` that its viewer may see, newest first (``services.search``)."""
        if self.search is None:
            raise RuntimeError(f"the search index is on host 0, not on {self.names}")
        return await self.search.search(query)

    async def rebuild_search_index(self) -> int:
        """Rebuild the search index from the graph now (``bench/search_bench.py`` indexes in bulk with it)."""
        if self.search is None:
            raise RuntimeError(f"the search index is on host 0, not on {self.names}")
        return await self.search.rebuild()
