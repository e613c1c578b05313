"""Checks after (or during) a run: were acknowledged writes kept, and are the home feeds exactly right?

Two questions, answered from outside, through the API and the graph:

* **Lost writes** (``Checker.lost_writes``): every post in the ``AckLog``
  exists (``GET /api/v1/statuses/:id`` and the graph) and is in the home feed
  of each active follower of its author (and the author's own); every
  acknowledged like shows ``favourited`` to its user and is persisted as a
  ``LIKED`` edge; every acknowledged follow shows in relationships and is a
  ``FOLLOWS`` edge. A write the server has not finished yet (a like not yet
  persisted, a fan-out still running) is retried until a patience runs out;
  only what is still missing then counts as lost. Writes that were never
  acknowledged are not checked: nothing was promised about them.
* **Exact feeds** (``Checker.feed_diffs``, ``Checker.converge``): for a
  sample of active users, the first page of the home feed below a cutoff id
  must equal what the graph (the system of record) says it should be: the
  newest posts by the people they follow and their own, below the cutoff.
  The cutoff trails the clock by a grace period, so posts still in flight in
  a healthy system are not compared; users who sent a follow recently are
  left out of that poll (their feed changes with the follow's backfill).

"Active" users are those the runner saw read their home feed: fan-out keeps
only their inboxes (an inactive user's next read rebuilds it from the graph,
which would hide any loss).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.load.population import Population, bounded_gather
from bench.load.runner import AckedPair, AckedPost, AckLog, World
from config import Settings
from graph.driver import GraphClient
from ids import min_id_at_ms

FEED_PAGE = 40  # Mastodon's largest page
HTTP_CONCURRENCY = 8
FOLLOW_QUIET_SECONDS = 5.0  # users who sent a follow this recently are not compared in a feed poll
MAX_FEED_PAGES = 25


@dataclass(frozen=True)
class FeedDiff:
    """A feed that is not what the graph says: member index, ids missing, ids extra (or the error status)."""

    user: int
    missing: tuple[int, ...] = ()
    extra: tuple[int, ...] = ()
    status: int = 200


@dataclass
class Losses:
    """Acknowledged writes found missing, by kind; ``checked_*`` say how many were looked at."""

    checked_posts: int = 0
    checked_feed_pairs: int = 0
    checked_likes: int = 0
    checked_follows: int = 0
    posts_missing: list[int] = field(default_factory=list)  # not readable / not in the graph
    feed_missing: list[tuple[int, int]] = field(default_factory=list)  # (post id, follower index)
    # (post id, follower index) where the follower follows the author through a follow that was sent but never
    # acknowledged (its graph write happened, its answer did not): a feed gap, but no acknowledged write lost.
    feed_gaps_unacked_follow: list[tuple[int, int]] = field(default_factory=list)
    likes_not_favourited: list[AckedPair] = field(default_factory=list)
    likes_not_persisted: list[AckedPair] = field(default_factory=list)
    follows_missing: list[AckedPair] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Distinct acknowledged writes with any part missing."""
        posts = set(self.posts_missing) | {p for p, _ in self.feed_missing}
        likes = {(x.user, x.other) for x in (*self.likes_not_favourited, *self.likes_not_persisted)}
        return len(posts) + len(likes) + len(self.follows_missing)

    def describe(self) -> str:
        parts = []
        if self.posts_missing:
            parts.append(f"{len(self.posts_missing)} posts gone")
        if self.feed_missing:
            posts = len({p for p, _ in self.feed_missing})
            parts.append(f"{posts} posts missing from {len(self.feed_missing)} follower feeds")
        if self.likes_not_favourited:
            parts.append(f"{len(self.likes_not_favourited)} likes not favourited")
        if self.likes_not_persisted:
            parts.append(f"{len(self.likes_not_persisted)} likes not in the graph")
        if self.follows_missing:
            parts.append(f"{len(self.follows_missing)} follows gone")
        lost = "; ".join(parts) or "none"
        if self.feed_gaps_unacked_follow:
            gaps = self.feed_gaps_unacked_follow
            lost += f" (besides: {len({p for p, _ in gaps})} posts absent from {len(gaps)} feeds of users whose"
            lost += " follow of the author was never acknowledged)"
        return lost


@dataclass
class Convergence:
    """When the sampled feeds were first all exactly right, or None within the deadline.

    ``converged_at`` is when the first poll that found every sampled feed
    exact began (wall clock); that poll took ``poll_seconds``. ``uncertain``
    users were left out of the sample: a follow of theirs was sent but never
    acknowledged, so whether (and how far) it was applied is unknown.
    """

    converged_at: float | None
    polls: int
    sampled: int
    last_diffs: list[FeedDiff]
    poll_seconds: float = 0.0
    uncertain: int = 0


class Checker:
    """Reads the API as each user and the graph directly; never writes."""

    def __init__(
        self, settings: Settings, population: Population, acks: AckLog, world: World, http: aiohttp.ClientSession
    ) -> None:
        self.base_url = settings.base_url
        self.population = population
        self.acks = acks
        self.world = world
        self.http = http
        self.graph = GraphClient(
            settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database
        )
        self._rng = random.Random(11)

    async def close(self) -> None:
        await self.graph.close()

    # -- HTTP as a member ----------------------------------------------------------------

    async def _get(self, path: str, member_index: int, attempts: int = 3) -> tuple[int, Any]:
        """(status, JSON body); transient failures (5xx, connection) are retried a few times."""
        headers = self.population.members[member_index].headers
        status = 0
        for attempt in range(attempts):
            try:
                async with self.http.get(self.base_url + path, headers=headers) as response:
                    body = await response.read()
                    status = response.status
                    if status == 200:
                        return status, orjson.loads(body)
                    if status < 500:
                        return status, None
            except (aiohttp.ClientError, TimeoutError, OSError):
                status = 0
            if attempt + 1 < attempts:
                await asyncio.sleep(1.0)
        return status, None

    async def _home_ids(self, member_index: int, max_id: int, limit: int = FEED_PAGE) -> tuple[int, list[int]]:
        status, body = await self._get(f"/api/v1/timelines/home?max_id={max_id}&limit={limit}", member_index)
        return status, ([int(s["id"]) for s in body] if status == 200 else [])

    # -- the graph's view -----------------------------------------------------------------

    async def _followees(self, user_ids: list[int]) -> dict[int, set[int]]:
        rows = await self.graph.read(
            "MATCH (u:Account)-[:FOLLOWS]->(a:Account) WHERE u.id IN $ids RETURN u.id AS u, a.id AS a", ids=user_ids
        )
        out: dict[int, set[int]] = {u: set() for u in user_ids}
        for row in rows:
            out[row["u"]].add(row["a"])
        return out

    async def _followers(self, author_ids: list[int]) -> dict[int, set[int]]:
        rows = await self.graph.read(
            "MATCH (f:Account)-[:FOLLOWS]->(a:Account) WHERE a.id IN $ids RETURN a.id AS a, f.id AS f",
            ids=author_ids,
        )
        out: dict[int, set[int]] = {a: set() for a in author_ids}
        for row in rows:
            out[row["a"]].add(row["f"])
        return out

    async def _statuses_by_author(self, author_ids: list[int], before_id: int) -> dict[int, list[int]]:
        """Author id -> their status ids below ``before_id``, newest first."""
        rows = await self.graph.read(
            "MATCH (s:Status) WHERE s.account_id IN $ids AND s.id < $before RETURN s.id AS id, s.account_id AS a",
            ids=author_ids,
            before=before_id,
        )
        out: dict[int, list[int]] = defaultdict(list)
        for row in rows:
            out[row["a"]].append(row["id"])
        for ids in out.values():
            ids.sort(reverse=True)
        return out

    # -- exact feeds ------------------------------------------------------------------------

    async def expected_feeds(self, users: list[int], before_id: int, limit: int = FEED_PAGE) -> dict[int, list[int]]:
        """Member index -> the ids the first home page below ``before_id`` should hold, newest first."""
        members = self.population.members
        followees = await self._followees([members[u].id for u in users])
        authors = sorted({a for ids in followees.values() for a in ids} | {members[u].id for u in users})
        posts = await self._statuses_by_author(authors, before_id)
        expected = {}
        for u in users:
            me = members[u].id
            candidates = [s for a in (*followees[me], me) for s in posts.get(a, [])[:limit]]
            expected[u] = sorted(candidates, reverse=True)[:limit]
        return expected

    async def feed_diffs(self, users: list[int], before_id: int) -> list[FeedDiff]:
        """The sampled users whose first home page below ``before_id`` is not exactly what the graph says."""
        if not users:
            return []
        expected = await self.expected_feeds(users, before_id)
        pages = await bounded_gather([self._home_ids(u, before_id) for u in users], HTTP_CONCURRENCY)
        diffs = []
        for u, (status, got) in zip(users, pages, strict=True):
            want = expected[u]
            if status != 200:
                diffs.append(FeedDiff(u, status=status))
            elif got != want:
                # Compare above the lowest id both pages reach (a full page says nothing below its last id).
                floor = max(want[-1] if len(want) == FEED_PAGE else 0, got[-1] if len(got) == FEED_PAGE else 0)
                missing = tuple(sorted({s for s in want if s > floor} - set(got), reverse=True))
                extra = tuple(sorted({s for s in got if s > floor} - set(want), reverse=True))
                diffs.append(FeedDiff(u, missing, extra))
        return diffs

    def uncertain_users(self) -> set[int]:
        """Users with a follow that was sent but never acknowledged: their follow set is unknown to the client."""
        return {entry["user"] for entry in self.acks.unacked if entry["kind"] == "follow"}

    def sample_active(self, size: int, quiet_since: float) -> list[int]:
        """Up to ``size`` active users, none uncertain, who sent no follow after ``quiet_since`` (wall clock)."""
        uncertain = self.uncertain_users()
        eligible = [
            u
            for u in self.world.active_since
            if self.world.follow_attempts.get(u, 0.0) < quiet_since and u not in uncertain
        ]
        if len(eligible) > size:
            eligible = self._rng.sample(eligible, size)
        return sorted(eligible)

    async def converge(
        self,
        not_before: float,
        deadline: float,
        *,
        grace: float = 2.0,
        sample_size: int = 200,
        on_poll: Callable[[float, list[FeedDiff], str], None] | None = None,
    ) -> Convergence:
        """Poll sampled feeds until one poll finds them all exactly right, with a cutoff at or after ``not_before``.

        Each poll compares feeds below the id of ``now - grace``; a poll only
        counts once that cutoff has reached ``not_before`` (say, the moment a
        restarted component answered), so posts made during the fault are in
        the comparison. Returns when converged or at ``deadline`` (wall clock).
        """
        polls = 0
        diffs: list[FeedDiff] = []
        while True:
            wait = not_before + grace - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            began = time.time()
            cutoff = began - grace
            users = self.sample_active(sample_size, cutoff - FOLLOW_QUIET_SECONDS)
            try:
                diffs = await self.feed_diffs(users, min_id_at_ms(int(cutoff * 1000)))
                note = f"{len(diffs)} of {len(users)} feeds differ"
            except Exception as exc:  # the graph itself may be unreachable during a fault
                diffs = [FeedDiff(-1, status=0)]
                note = f"poll failed: {type(exc).__name__}: {exc}"
            polls += 1
            took = time.time() - began
            if on_poll is not None:
                on_poll(began, diffs, f"{note} ({took:.1f}s)")
            uncertain = len(self.uncertain_users())
            if not diffs:
                return Convergence(began, polls, len(users), [], took, uncertain)
            if time.time() > deadline:
                return Convergence(None, polls, len(users), diffs, took, uncertain)
            await asyncio.sleep(0.5)

    # -- lost writes ------------------------------------------------------------------------

    async def lost_writes(
        self, start: float, end: float, *, patience: float = 30.0, through_api: bool = True
    ) -> Losses:
        """Acknowledged writes answered in [start, end) (wall clock) that are missing now (after ``patience``).

        ``through_api=False`` checks the graph only (cheap: for re-checking
        everything acknowledged earlier after a later fault).
        """
        posts = [p for p in self.acks.posts if start <= p.at < end]
        likes = [x for x in self.acks.likes if start <= x.at < end]
        follows = [x for x in self.acks.follows if start <= x.at < end]
        losses = Losses(checked_posts=len(posts), checked_likes=len(likes), checked_follows=len(follows))
        deadline = time.time() + patience
        losses.posts_missing = await self._posts_missing(posts, through_api)
        losses.follows_missing = await self._follows_missing(follows, through_api)
        losses.likes_not_persisted = await self._likes_not_persisted(likes, deadline)
        if through_api:
            losses.likes_not_favourited = await self._likes_not_favourited(likes)
            pairs, missing = await self._feeds_missing(posts, deadline)
            losses.checked_feed_pairs = pairs
            unsure = {(e["user"], e["followee"]) for e in self.acks.unacked if e["kind"] == "follow"}
            author_of = {p.id: p.author for p in posts}
            losses.feed_missing = [(p, u) for p, u in missing if (u, author_of[p]) not in unsure]
            losses.feed_gaps_unacked_follow = [(p, u) for p, u in missing if (u, author_of[p]) in unsure]
        return losses

    async def _posts_missing(self, posts: list[AckedPost], through_api: bool) -> list[int]:
        ids = [p.id for p in posts]
        found = set()
        for start in range(0, len(ids), 1000):
            rows = await self.graph.read(
                "MATCH (s:Status) WHERE s.id IN $ids RETURN s.id AS id", ids=ids[start : start + 1000]
            )
            found |= {r["id"] for r in rows}
        missing = [i for i in ids if i not in found]
        if through_api:
            answers = await bounded_gather(
                [self._get(f"/api/v1/statuses/{p.id}", p.author) for p in posts if p.id in found], HTTP_CONCURRENCY
            )
            readable = [p for p in posts if p.id in found]
            missing += [
                p.id
                for p, (status, body) in zip(readable, answers, strict=True)
                if status != 200 or int(body["id"]) != p.id
            ]
        return missing

    async def _follows_missing(self, follows: list[AckedPair], through_api: bool) -> list[AckedPair]:
        members = self.population.members
        pairs = [[members[f.user].id, members[f.other].id] for f in follows]
        rows = (
            await self.graph.read(
                "UNWIND $pairs AS p MATCH (:Account {id: p[0]})-[:FOLLOWS]->(:Account {id: p[1]}) "
                "RETURN p[0] AS a, p[1] AS b",
                pairs=pairs,
            )
            if pairs
            else []
        )
        found = {(r["a"], r["b"]) for r in rows}
        missing = [f for f, pair in zip(follows, pairs, strict=True) if tuple(pair) not in found]
        if through_api:
            by_user: dict[int, list[AckedPair]] = defaultdict(list)
            for f in follows:
                if f not in missing:
                    by_user[f.user].append(f)

            async def check(user: int, wanted: list[AckedPair]) -> list[AckedPair]:
                query = "&".join(f"id[]={members[f.other].id}" for f in wanted[:100])
                status, body = await self._get(f"/api/v1/accounts/relationships?{query}", user)
                following = {int(r["id"]) for r in body if r["following"]} if status == 200 else set()
                return [f for f in wanted[:100] if members[f.other].id not in following]

            for gone in await bounded_gather([check(u, w) for u, w in by_user.items()], HTTP_CONCURRENCY):
                missing += gone
        return missing

    async def _likes_not_persisted(self, likes: list[AckedPair], deadline: float) -> list[AckedPair]:
        """Likes without a ``LIKED`` edge, waiting (until ``deadline``) for the persister to catch up."""
        members = self.population.members
        waiting = list(likes)
        while waiting:
            pairs = [[members[x.user].id, x.other] for x in waiting]
            rows = await self.graph.read(
                "UNWIND $pairs AS p MATCH (:Account {id: p[0]})-[:LIKED]->(:Status {id: p[1]}) "
                "RETURN p[0] AS a, p[1] AS s",
                pairs=pairs,
            )
            found = {(r["a"], r["s"]) for r in rows}
            waiting = [x for x, pair in zip(waiting, pairs, strict=True) if tuple(pair) not in found]
            if not waiting or time.time() > deadline:
                break
            await asyncio.sleep(1.0)
        return waiting

    async def _likes_not_favourited(self, likes: list[AckedPair]) -> list[AckedPair]:
        answers = await bounded_gather(
            [self._get(f"/api/v1/statuses/{x.other}", x.user) for x in likes], HTTP_CONCURRENCY
        )
        return [
            x
            for x, (status, body) in zip(likes, answers, strict=True)
            if status != 200 or body.get("favourited") is not True
        ]

    async def _feeds_missing(self, posts: list[AckedPost], deadline: float) -> tuple[int, list[tuple[int, int]]]:
        """(pairs checked, (post, follower) pairs where an active follower's feed lacks the post)."""
        if not posts:
            return 0, []
        members = self.population.members
        index_of = self.population.index_of
        authors = sorted({members[p.author].id for p in posts})
        followers = await self._followers(authors)
        wanted: dict[int, set[int]] = defaultdict(set)  # follower index -> post ids their feed must hold
        for p in posts:
            author_id = members[p.author].id
            for follower_id in (*followers[author_id], author_id):
                follower = index_of.get(follower_id)
                if follower is not None and follower in self.world.active_since:
                    wanted[follower].add(p.id)
        pairs = sum(len(ids) for ids in wanted.values())
        while True:
            results = await bounded_gather([self._feed_lacks(u, ids) for u, ids in wanted.items()], HTTP_CONCURRENCY)
            wanted = {u: lacking for u, lacking in zip(list(wanted), results, strict=True) if lacking}
            if not wanted or time.time() > deadline:
                return pairs, sorted((p, u) for u, ids in wanted.items() for p in ids)
            await asyncio.sleep(2.0)

    async def _feed_lacks(self, user: int, post_ids: set[int]) -> set[int]:
        """Which of ``post_ids`` the user's home feed does not hold (paging down from the newest of them)."""
        lacking = set(post_ids)
        max_id = max(post_ids) + 1
        oldest = min(post_ids)
        for _ in range(MAX_FEED_PAGES):
            status, ids = await self._home_ids(user, max_id)
            if status != 200:
                return lacking
            lacking -= set(ids)
            if not lacking or len(ids) < FEED_PAGE or ids[-1] <= oldest:
                return lacking
            max_id = ids[-1]
        return lacking
