"""``NotifierAndLikePersister``: one process for the two interaction consumers.

The notifier (``actors.notifier``) and the like persister
(``actors.persister``) each consume one stream group in order, so each runs
as a single consumer; they wait on Redis and the graph nearly all the time.
A process of their own each would cost a Ray worker process apiece (memory
and start-up time, ``bench/footprint.py``) for no parallelism, so one actor
runs both loops as separate tasks. Killing its process stops both; Ray
restarts the actor and each loop first finishes the events it had taken.
"""

from __future__ import annotations

import asyncio

import ray

from actors.notifier import Notifier
from actors.persister import LikePersister
from actors.registry import LIKE_PERSISTER, NOTIFIER


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class NotifierAndLikePersister:
    async def __init__(self) -> None:
        self.notifier = await Notifier.create(NOTIFIER)
        self.persister = LikePersister(LIKE_PERSISTER)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.notifier.run()), loop.create_task(self.persister.run())]

    async def ping(self) -> list[str]:
        return [NOTIFIER, LIKE_PERSISTER]
