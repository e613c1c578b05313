"""The open-loop runner: sends a schedule at its due times and records every request and every acknowledged write.

Open loop: each op is launched as its own task when it is due, whatever is
still outstanding, and its latency runs from the due time, not from when it
was actually sent, so a stalled server shows up as latency instead of
silently lowering the offered rate (coordinated omission). The client is
bounded: at most ``max_outstanding`` requests at once (an op due beyond that
is recorded as a client-side error, ``OVERLOAD``, not delayed) and each
request has a timeout (``TIMEOUT``). Only the base URL given is contacted.

Every write answered 2xx goes into the ``AckLog`` (post ids, like pairs,
follow pairs, with the time of the answer), appended to a JSON-lines file
as it happens, so that a checker can later prove nothing acknowledged was
lost. Writes that were sent but not acknowledged are logged too
(``unacked``): the server may or may not have applied them, and the checker
must neither count them as lost nor as absent.

The runner also keeps the client's view of the world that later ops need:
the posts it knows of (seeded and acknowledged, for likes), who follows whom
(seeded, acknowledged and in flight, so a follow is always a new one), and
which users have read their home feed (active users, whose inboxes fan-out
keeps up to date).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

from bench.load.mix import Op
from bench.load.population import Population

OVERLOAD = -2  # status of an op not sent because ``max_outstanding`` requests were already in flight
TIMEOUT = -1  # no answer within the request timeout
CONNECT = 0  # the connection failed or dropped before an answer
SKIPPED = -3  # nothing to do (e.g. no one left to follow); not sent and not counted as a request
RECENT_POSTS = 400  # likes pick among this many most recent known posts
TARGET_TRIES = 20


@dataclass(slots=True)
class Record:
    """One request: when it was due (monotonic and wall clock), when it finished, and how it ended."""

    seq: int
    kind: str
    user: int  # the acting member's index
    due: float  # time.perf_counter() when it was due
    due_wall: float  # time.time() when it was due
    latency: float  # seconds from due to answer (or failure)
    status: int  # HTTP status, or OVERLOAD / TIMEOUT / CONNECT / SKIPPED

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class AckedPost:
    id: int
    author: int  # member index
    at: float  # wall time of the acknowledgement
    media_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class AckedPair:
    """A like (user, status id) or a follow (follower index, followee index), acknowledged at ``at``."""

    user: int
    other: int
    at: float


@dataclass
class AckLog:
    """Every acknowledged write, in order, mirrored to a JSON-lines file when ``path`` is given."""

    path: Path | None = None
    posts: list[AckedPost] = field(default_factory=list)
    likes: list[AckedPair] = field(default_factory=list)  # (member index, status id)
    follows: list[AckedPair] = field(default_factory=list)  # (member index, member index)
    unacked: list[dict[str, Any]] = field(default_factory=list)
    _file: IO[bytes] | None = None

    def _append(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # kept open for the run; ``close`` closes it
        self._file.write(orjson.dumps(entry) + b"\n")
        self._file.flush()

    def post(self, entry: AckedPost) -> None:
        self.posts.append(entry)
        self._append({"kind": "post", "id": entry.id, "author": entry.author, "at": entry.at, "media": entry.media_ids})

    def like(self, entry: AckedPair) -> None:
        self.likes.append(entry)
        self._append({"kind": "like", "user": entry.user, "status_id": entry.other, "at": entry.at})

    def follow(self, entry: AckedPair) -> None:
        self.follows.append(entry)
        self._append({"kind": "follow", "user": entry.user, "followee": entry.other, "at": entry.at})

    def not_acknowledged(self, kind: str, status: int, at: float, **what: Any) -> None:
        entry = {"kind": kind, "status": status, "at": at, **what}
        self.unacked.append(entry)
        self._append({"unacked": True, **entry})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class World:
    """What the client knows: posts to like, who follows whom, who is active. Updated as answers arrive."""

    population: Population
    recent_posts: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_POSTS))
    following: dict[int, set[int]] = field(default_factory=dict)  # seeded, acknowledged and in flight
    liked: dict[int, set[int]] = field(default_factory=dict)  # status ids, acknowledged and in flight
    active_since: dict[int, float] = field(default_factory=dict)  # member index -> first 200 home read (wall)
    follow_attempts: dict[int, float] = field(default_factory=dict)  # member index -> last follow sent (wall)

    def __post_init__(self) -> None:
        seeded = sorted(s for posts in self.population.seeded_posts.values() for s in posts)
        self.recent_posts.extend(seeded[-RECENT_POSTS:])
        self.following = self.population.following()


class OpenLoop:
    """Runs schedules against ``base_url`` for ``population``; records requests, acknowledgements and the world."""

    def __init__(
        self,
        base_url: str,
        population: Population,
        acks: AckLog,
        *,
        timeout: float = 15.0,
        max_outstanding: int = 512,
        seed: int = 7,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.population = population
        self.acks = acks
        self.timeout = timeout
        self.max_outstanding = max_outstanding
        self.world = World(population)
        self.records: list[Record] = []
        self._in_flight: dict[int, float] = {}  # seq -> due wall time of each request not answered yet
        self.photo_pool_empty = 0  # photo posts sent without a photo because the pool ran dry
        self._rng = random.Random(seed)
        self._popular = list(accumulate(population.plan.popularity))
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> OpenLoop:
        connector = aiohttp.TCPConnector(limit=self.max_outstanding, limit_per_host=self.max_outstanding)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout), raise_for_status=False
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, ops: list[Op], stop: asyncio.Event | None = None) -> list[Record]:
        """Send ``ops`` on schedule (from now) until done or ``stop`` is set; returns this run's records.

        Waits for the requests still outstanding at the end (each bounded by the timeout).
        """
        if self._session is None:
            raise RuntimeError("use OpenLoop as an async context manager")
        first = len(self.records)
        start, start_wall = time.perf_counter(), time.time()
        tasks: set[asyncio.Task[None]] = set()
        for op in ops:
            if stop is not None and stop.is_set():
                break
            due = start + op.at
            delay = due - time.perf_counter()
            if delay > 0:
                if stop is None:
                    await asyncio.sleep(delay)
                else:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
            due_wall = start_wall + op.at
            if len(self._in_flight) >= self.max_outstanding:
                self.records.append(
                    Record(op.seq, op.kind, op.user, due, due_wall, time.perf_counter() - due, OVERLOAD)
                )
                continue
            task = asyncio.create_task(self._send(op, due, due_wall))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        return self.records[first:]

    # -- one op --------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._in_flight)

    async def settle(self, before: float) -> None:
        """Wait until every request due before ``before`` (wall clock) has its record (bounded by the timeout).

        Summaries of a window must wait for this: the slowest requests of a
        window are the last to be recorded, and leaving them out would flatter it.
        """
        for _ in range(int((self.timeout + 2) / 0.05)):
            if not any(due < before for due in self._in_flight.values()):
                return
            await asyncio.sleep(0.05)

    async def _send(self, op: Op, due: float, due_wall: float) -> None:
        self._in_flight[op.seq] = due_wall
        try:
            status = await self._perform(op)
        finally:
            del self._in_flight[op.seq]
        if status != SKIPPED:
            self.records.append(Record(op.seq, op.kind, op.user, due, due_wall, time.perf_counter() - due, status))

    async def _request(self, method: str, path: str, member_index: int, **kwargs: Any) -> tuple[int, Any]:
        """(status, parsed JSON body or None); failures map to TIMEOUT or CONNECT."""
        assert self._session is not None
        member = self.population.members[member_index]
        try:
            async with self._session.request(
                method, self.base_url + path, headers=member.headers, **kwargs
            ) as response:
                body = await response.read()
                parsed = orjson.loads(body) if response.status == 200 and body else None
                return response.status, parsed
        except TimeoutError:
            return TIMEOUT, None
        except (aiohttp.ClientError, orjson.JSONDecodeError, OSError):
            return CONNECT, None

    async def _perform(self, op: Op) -> int:
        members = self.population.members
        if op.kind == "home":
            status, _ = await self._request("GET", "/api/v1/timelines/home", op.user)
            if status == 200:
                self.world.active_since.setdefault(op.user, time.time())
            return status
        if op.kind == "profile":
            assert op.target is not None
            status, _ = await self._request("GET", f"/api/v1/accounts/{members[op.target].id}/statuses", op.user)
            return status
        if op.kind == "post":
            return await self._post(op)
        if op.kind == "like":
            return await self._like(op)
        if op.kind == "follow":
            return await self._follow(op)
        raise ValueError(f"unknown op kind {op.kind!r}")

    async def _post(self, op: Op) -> int:
        media: list[int] = []
        if op.photo:
            pool = self.population.media_pool.get(op.user) or []
            if pool:
                media.append(pool.pop())
            else:
                self.photo_pool_empty += 1
        text = f"Post {op.seq} by {self.population.members[op.user].username}: " + "words " * self._rng.randrange(3, 40)
        body = {"status": text.strip(), "media_ids": [str(m) for m in media]}
        status, answer = await self._request("POST", "/api/v1/statuses", op.user, json=body)
        now = time.time()
        if status == 200 and answer is not None:
            post_id = int(answer["id"])
            self.acks.post(AckedPost(post_id, op.user, now, tuple(media)))
            self.world.recent_posts.append(post_id)
        else:
            self.acks.not_acknowledged("post", status, now, author=op.user, media=media)
        return status

    async def _like(self, op: Op) -> int:
        liked = self.world.liked.setdefault(op.user, set())
        candidates = self.world.recent_posts
        target = None
        for _ in range(TARGET_TRIES):
            if not candidates:
                break
            pick = candidates[self._rng.randrange(len(candidates))]
            if pick not in liked:
                target = pick
                break
        if target is None:
            return SKIPPED
        liked.add(target)  # in flight: no second like of the same post by this user
        status, answer = await self._request("POST", f"/api/v1/statuses/{target}/favourite", op.user)
        now = time.time()
        if status == 200 and answer is not None and answer.get("favourited") is True:
            self.acks.like(AckedPair(op.user, target, now))
        else:
            self.acks.not_acknowledged("like", status, now, user=op.user, status_id=target)
        return status

    async def _follow(self, op: Op) -> int:
        plan = self.population.plan
        following = self.world.following.setdefault(op.user, set())
        target = None
        for _ in range(TARGET_TRIES):
            pick = self._rng.choices(range(plan.users), cum_weights=self._popular)[0]
            if pick != op.user and pick not in following:
                target = pick
                break
        if target is None:
            return SKIPPED
        following.add(target)  # in flight: never the same follow twice
        self.world.follow_attempts[op.user] = time.time()
        followee = self.population.members[target]
        status, answer = await self._request("POST", f"/api/v1/accounts/{followee.id}/follow", op.user)
        now = time.time()
        self.world.follow_attempts[op.user] = now
        if status == 200 and answer is not None and answer.get("following") is True:
            self.acks.follow(AckedPair(op.user, target, now))
        else:
            self.acks.not_acknowledged("follow", status, now, user=op.user, followee=target)
        return status
