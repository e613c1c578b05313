"""The per-author follower lists in Redis that fan-out pages (``redis_store.followers``), on the real stack.

The graph is the system of record; the list must match it, or be treated as
missing and rebuilt from it. Tests run with FOLLOWER_PAGE_SIZE=50 and
CELEBRITY_THRESHOLD=3 (tests/conftest.py), so a few hundred followers make a
pass of several pages and a third follower promotes an author.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import neo4j
import redis

from config import Settings
from ids import SnowflakeGenerator, min_id_at_ms
from redis_store.client import redis_from
from redis_store.followers import COMPLETE, FollowerLists, author_keys, followers_key
from redis_store.timelines import celeb_ready_key, member, timeline_key
from stack import Stack
from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow, home, home_ids, mark_active, post, unfollow

T = TypeVar("T")
seed_ids = SnowflakeGenerator(1022)  # ids for accounts written straight into the graph


def listed(redis_client: redis.Redis, author: int) -> set[int]:
    """The follower ids in the author's list (without the completeness marker)."""
    return {int(m) for m in redis_client.zrange(followers_key(author), 0, -1) if m != COMPLETE}


def is_complete(redis_client: redis.Redis, author: int) -> bool:
    return redis_client.zscore(followers_key(author), COMPLETE) is not None


def graph_followers(session: neo4j.Session, author: int) -> set[int]:
    rows = session.execute_read(
        lambda tx: tx.run("MATCH (:Account {id: $id})<-[:FOLLOWS]-(f:Account) RETURN f.id AS id", id=author).data()
    )
    return {r["id"] for r in rows}


def seed_followers(session: neo4j.Session, redis_client: redis.Redis, author: int, ids: list[int]) -> None:
    """New active follower accounts written straight into the graph (sign-up over HTTP would be slow)."""
    for start in range(0, len(ids), 2500):
        session.execute_write(
            lambda tx, batch=ids[start : start + 2500]: tx.run(
                """
                MATCH (a:Account {id: $author})
                UNWIND $ids AS fid
                CREATE (f:Account {id: fid, username: 'seed' + toString(fid), username_key: 'seed' + toString(fid),
                                   email_key: toString(fid) + '@seed.example', followers_count: 0,
                                   following_count: 1, statuses_count: 0, celebrity: false, created_at: 0})
                CREATE (f)-[:FOLLOWS {id: fid, created_at: 0}]->(a)
                """,
                author=author,
                ids=batch,
            ).consume()
        )
    session.execute_write(
        lambda tx: tx.run(
            "MATCH (a:Account {id: $id}) SET a.followers_count = a.followers_count + $n", id=author, n=len(ids)
        ).consume()
    )
    mark_active(redis_client, ids)


def mark_celebrity_in_graph_only(session: neo4j.Session, author: int) -> None:
    """Let an author gain many followers and still be pushed to, through the list.

    Tests promote at 3 followers, and a promotion drops the list. This flags the author as a celebrity
    in the graph without the promotion having run (as between the crossing follow and its event): no
    promotion fires, and posts are pushed until ``celeb:ready`` exists.
    """
    session.execute_write(lambda tx: tx.run("MATCH (a:Account {id: $id}) SET a.celebrity = true", id=author).consume())


def with_lists(stack: Stack, work: Callable[[FollowerLists], Awaitable[T]]) -> T:
    """Run ``work`` against the store API on its own connection: the test acting as a fan-out worker would."""

    async def run() -> T:
        client = redis_from(stack.settings)
        try:
            return await work(FollowerLists(client, Settings().follower_list_days))
        finally:
            await client.aclose()

    return asyncio.run(run())


def completed_by_a_post(http: httpx.Client, redis_client: redis.Redis, author: User) -> dict:
    """A post by ``author``; its fan-out (re)builds the author's list if needed. Returns the post."""
    status = post(http, author, "a post")
    eventually(lambda: is_complete(redis_client, int(author.id)))
    return status


def test_follow_and_unfollow_keep_the_list_equal_to_the_graph(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis, graph_session: neo4j.Session
) -> None:
    author, one, two, three = make_user(), make_user(), make_user(), make_user()
    aid = int(author.id)
    follow(http, one, author)  # no list yet: it stays absent (not partial) until a fan-out builds it
    assert redis_client.exists(followers_key(aid)) == 0
    completed_by_a_post(http, redis_client, author)
    assert listed(redis_client, aid) == {int(one.id)}
    follow(http, two, author)
    assert listed(redis_client, aid) == {int(one.id), int(two.id)} == graph_followers(graph_session, aid)
    unfollow(http, one, author)
    unfollow(http, one, author)  # twice is a no-op
    assert listed(redis_client, aid) == {int(two.id)} == graph_followers(graph_session, aid)
    assert is_complete(redis_client, aid)
    assert redis_client.exists(*author_keys(aid)[1:]) == 0  # no rebuild, no doubt left behind

    # The third follower makes a celebrity: posts are pulled, the list is dropped. Back under the
    # threshold, the demotion's pass over the followers rebuilds it.
    follow(http, one, author)
    follow(http, three, author)
    eventually(lambda: redis_client.exists(celeb_ready_key(aid)) == 1 and redis_client.exists(followers_key(aid)) == 0)
    unfollow(http, one, author)
    unfollow(http, three, author)
    eventually(lambda: is_complete(redis_client, aid))
    assert listed(redis_client, aid) == {int(two.id)} == graph_followers(graph_session, aid)


def test_fan_out_reaches_followers_through_the_list(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis
) -> None:
    author, fan, probe = make_user(), make_user(), make_user()
    aid = int(author.id)
    home(http, fan)
    home(http, probe)
    follow(http, fan, author)
    completed_by_a_post(http, redis_client, author)
    # White-box: ``probe`` is in the list but not in the graph, so only a fan-out that reads the list reaches it.
    redis_client.zadd(followers_key(aid), {member(int(probe.id)): 0})
    status = post(http, author, "through the list")
    eventually(lambda: status["id"] in home_ids(http, fan))
    eventually(lambda: status["id"] in home_ids(http, probe))


def test_a_lost_list_is_rebuilt_and_the_next_fan_out_still_reaches_everyone(
    http: httpx.Client,
    make_user: UserFactory,
    redis_client: redis.Redis,
    graph_session: neo4j.Session,
) -> None:
    author, fan = make_user(), make_user()
    aid = int(author.id)
    home(http, fan)
    follow(http, fan, author)
    completed_by_a_post(http, redis_client, author)
    seeded = [seed_ids.next_id() for _ in range(180)]  # four pages of 50 with the real follower
    seed_followers(graph_session, redis_client, aid, seeded)
    redis_client.delete(*author_keys(aid))  # what FLUSHALL, eviction or expiry does to it
    status = post(http, author, "after the loss")
    sid = member(int(status["id"]))
    eventually(lambda: status["id"] in home_ids(http, fan))

    def everyone_has_it() -> bool:
        with redis_client.pipeline(transaction=False) as pipe:
            for follower in seeded:
                pipe.zscore(timeline_key(follower), sid)
            return all(score is not None for score in pipe.execute())

    eventually(everyone_has_it)
    eventually(lambda: is_complete(redis_client, aid))
    assert listed(redis_client, aid) == {int(fan.id), *seeded} == graph_followers(graph_session, aid)


def test_a_follow_that_died_between_graph_and_list_is_repaired(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis, graph_session: neo4j.Session
) -> None:
    author, fan = make_user(), make_user()
    aid = int(author.id)
    home(http, fan)
    completed_by_a_post(http, redis_client, author)
    # What a follow leaves when its process dies after the graph write: the edge and a doubt, no list entry.
    # The doubt is back-dated past its grace, as if the crash were a while ago.
    redis_client.zadd(author_keys(aid)[3], {member(int(fan.id)): int(time.time() * 1000) - 3_600_000})
    graph_session.execute_write(
        lambda tx: tx.run(
            "MATCH (f:Account {id: $f}), (a:Account {id: $a}) CREATE (f)-[:FOLLOWS {id: $f, created_at: 0}]->(a) "
            "SET f.following_count = f.following_count + 1, a.followers_count = a.followers_count + 1",
            f=int(fan.id),
            a=aid,
        ).consume()
    )
    assert listed(redis_client, aid) == set()
    status = post(http, author, "repaired")
    eventually(lambda: status["id"] in home_ids(http, fan))
    eventually(lambda: is_complete(redis_client, aid) and listed(redis_client, aid) == {int(fan.id)})
    assert redis_client.exists(author_keys(aid)[3]) == 0


def test_an_unfollow_between_a_rebuild_reading_the_graph_and_writing_the_page_is_not_undone(
    http: httpx.Client,
    make_user: UserFactory,
    redis_client: redis.Redis,
    graph_session: neo4j.Session,
    stack: Stack,
) -> None:
    """The exact interleaving, driven step by step: the test is the rebuilding worker."""
    author, leaver, stayer, newcomer = make_user(), make_user(), make_user(), make_user()
    aid = int(author.id)
    mark_celebrity_in_graph_only(graph_session, aid)  # the third follow must not promote (and drop the list)
    follow(http, leaver, author)
    follow(http, stayer, author)

    async def rebuild_around_changes(lists: FollowerLists) -> tuple[bool, bool]:
        token = await lists.start_rebuild(aid)
        assert token is not None
        page = sorted(graph_followers(graph_session, aid))  # read before the changes below
        assert int(leaver.id) in page
        await asyncio.to_thread(unfollow, http, leaver, author)
        await asyncio.to_thread(follow, http, newcomer, author)
        added = await lists.add_rebuilt(aid, token, page)
        return added, await lists.finish_rebuild(aid, token)

    assert with_lists(stack, rebuild_around_changes) == (True, True)
    assert is_complete(redis_client, aid)
    assert listed(redis_client, aid) == {int(stayer.id), int(newcomer.id)} == graph_followers(graph_session, aid)


def test_unfollows_while_a_fan_out_rebuilds_the_list_are_not_undone(
    http: httpx.Client,
    make_user: UserFactory,
    redis_client: redis.Redis,
    graph_session: neo4j.Session,
    base_url: str,
) -> None:
    author = make_user()
    aid = int(author.id)
    mark_celebrity_in_graph_only(graph_session, aid)
    leavers = [make_user() for _ in range(8)]
    for user in leavers:
        follow(http, user, author)
    status = completed_by_a_post(http, redis_client, author)
    # Seeded followers on both sides of the real ones in id order: about 50 pages of 50.
    now_ms = int(time.time() * 1000)
    older = [min_id_at_ms(now_ms - 86_400_000) + i for i in range(1200)]
    seed_followers(graph_session, redis_client, aid, older + [seed_ids.next_id() for _ in range(1200)])
    redis_client.delete(*author_keys(aid))  # lost, as after FLUSHALL
    build_key = author_keys(aid)[1]

    started = threading.Event()

    def watch_for_the_rebuild() -> None:
        deadline = time.monotonic() + 60
        while not redis_client.exists(build_key):
            assert time.monotonic() < deadline, "the rebuild never started"
            time.sleep(0.002)
        started.set()

    watcher = threading.Thread(target=watch_for_the_rebuild)
    watcher.start()
    # Deleting the post takes it out of the followers' inboxes: a pass over them, which rebuilds the list.
    # (Unlike a new post's fan-out, the sweeper never repeats it while it runs.)
    assert http.delete(f"/api/v1/statuses/{status['id']}", headers=author.headers).status_code == 200
    watcher.join()
    assert started.is_set()

    def leave(user: User) -> int:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            return client.post(f"/api/v1/accounts/{author.id}/unfollow", headers=user.headers).status_code

    with ThreadPoolExecutor(max_workers=len(leavers)) as pool:
        assert set(pool.map(leave, leavers)) == {200}
    assert redis_client.exists(build_key) == 1, "the rebuild finished before the unfollows: nothing was in flight"
    eventually(lambda: is_complete(redis_client, aid), timeout=120)
    remaining = graph_followers(graph_session, aid)
    assert not remaining & {int(u.id) for u in leavers}
    assert listed(redis_client, aid) == remaining and len(remaining) == 2400


def test_concurrent_follows_from_many_clients_all_land_in_the_list(
    http: httpx.Client,
    make_user: UserFactory,
    redis_client: redis.Redis,
    graph_session: neo4j.Session,
    base_url: str,
) -> None:
    author = make_user()
    aid = int(author.id)
    mark_celebrity_in_graph_only(graph_session, aid)
    completed_by_a_post(http, redis_client, author)
    fans = [make_user() for _ in range(16)]
    for fan in fans:
        home(http, fan)

    def join(fan: User) -> int:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            return client.post(f"/api/v1/accounts/{author.id}/follow", headers=fan.headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(join, fans)) == {200}
    expected = {int(f.id) for f in fans}
    assert listed(redis_client, aid) == expected == graph_followers(graph_session, aid)
    assert is_complete(redis_client, aid)
    status = post(http, author, "to every new follower")
    for fan in fans:
        eventually(lambda fan=fan: status["id"] in home_ids(http, fan))
