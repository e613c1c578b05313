"""``StreamConsumers``: one process for the event stream's consumers (fan-out, notifier, like persister).

Host 0 also runs the story expiry timer (``actors.story_expiry``), which needs no process of its own either.

The fan-out consumers (``actors.fanout``), the notifier (``actors.notifier``)
and the like persister (``actors.persister``) each wait on Redis and the
graph nearly all the time, so one event loop carries them all, each loop a
task of its own. A process per consumer cost a Ray worker process apiece,
and every one that talks to the graph loads the ``neo4j`` driver, whose
import alone builds about 30 MB of lookup tables: about 95 MB per process
(``bench/footprint.py``). ``CONSUMER_HOSTS`` spreads the fan-out consumers
over more processes; the notifier and the like persister, one consumer each
because each group must be consumed in order, run on host 0, with the
sampler of Redis' gauges (``actors.sampler``).

Killing the process stops every consumer it runs; Ray restarts the actor
(``max_restarts=-1``) and each consumer first finishes the events it had
taken (``actors.consumer``).
"""

from __future__ import annotations

import asyncio

import ray

from actors.fanout import FanoutWorker
from actors.notifier import Notifier
from actors.persister import LikePersister
from actors.registry import LIKE_PERSISTER, NOTIFIER, fanout_name
from actors.sampler import StoreSampler
from actors.story_expiry import StoryExpirer


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class StreamConsumers:
    async def __init__(self, fanout_consumers: list[int], interactions: bool) -> None:
        """Runs the fan-out consumers ``fanout_consumers`` and, if ``interactions``, the notifier and persister."""
        self.names = [fanout_name(i) for i in fanout_consumers]
        self.fanout = FanoutWorker(fanout_consumers)
        consumers: list[FanoutWorker | Notifier | LikePersister | StoryExpirer | StoreSampler] = [self.fanout]
        if interactions:  # and the metrics' Redis sampler (actors.sampler), one per stack like them
            consumers += [await Notifier.create(NOTIFIER), LikePersister(LIKE_PERSISTER)]
            consumers += [StoryExpirer.create(self.fanout.settings), StoreSampler.create()]
            self.names += [NOTIFIER, LIKE_PERSISTER]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(consumer.run()) for consumer in consumers]

    async def ping(self) -> list[str]:
        return self.names

    async def fan_out(self, status_id: int, author_id: int) -> None:
        """Fan one post out now, outside the stream (``bench/feed_bench.py`` times it)."""
        await self.fanout.feed.distribute(status_id, author_id)
