"""Follows, posts and the hybrid fan-out home feed, over HTTP against the real stack."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import neo4j
import pytest
import ray
import redis

from redis_store.timelines import (
    active_key,
    celeb_ready_key,
    celebs_key,
    member,
    online_key,
    outbox_key,
    reblogs_key,
    stream_channel,
    timeline_key,
    unfollowed_key,
    user_keys,
)
from stack import Stack
from tests.conftest import User, UserFactory
from tests.waiting import wait_for


def post(http: httpx.Client, user: User, text: str, **fields: object) -> dict:
    response = http.post("/api/v1/statuses", headers=user.headers, data={"status": text, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def follow(http: httpx.Client, user: User, target: User) -> dict:
    response = http.post(f"/api/v1/accounts/{target.id}/follow", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def unfollow(http: httpx.Client, user: User, target: User) -> dict:
    response = http.post(f"/api/v1/accounts/{target.id}/unfollow", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def home(http: httpx.Client, user: User, **params: object) -> list[dict]:
    response = http.get("/api/v1/timelines/home", headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def home_ids(http: httpx.Client, user: User, **params: object) -> list[str]:
    return [s["id"] for s in home(http, user, **params)]


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait for asynchronous work (fan-out, a restarting server) to finish; fails if the condition never holds.

    A check that raises because a server is still coming up (refusing connections, or Redis still loading
    its append-only file) counts as "not yet".
    """

    def settled() -> bool:
        try:
            return bool(check())
        except (httpx.TransportError, redis.exceptions.ConnectionError):
            return False

    wait_for(settled, bool, what, timeout)


def account(http: httpx.Client, user: User) -> dict:
    return http.get(f"/api/v1/accounts/{user.id}").json()


def test_delivery_writes_the_keys_the_key_functions_name() -> None:
    """Delivery builds its keys itself (it runs for every follower of every post): the key functions' names."""
    users = [1, 42, 385765427934232576]
    for author in (None, 7):
        expected = [
            key
            for user in users
            for key in (active_key(user), timeline_key(user), reblogs_key(user), stream_channel(user), online_key(user))
            + ((unfollowed_key(user, author),) if author is not None else ())
        ]
        assert user_keys(users, author) == expected


def test_follow_post_and_see_it_in_the_follower_feed(http: httpx.Client, make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    home(http, bob)  # bob is active
    relationship = follow(http, bob, alice)
    assert relationship["following"] is True and relationship["id"] == alice.id
    status = post(http, alice, "hello from alice")
    assert status["account"]["id"] == alice.id and status["content"] == "<p>hello from alice</p>"
    eventually(lambda: status["id"] in home_ids(http, bob))
    assert status["id"] in home_ids(http, alice)  # own posts appear in your own feed


def test_follow_rules_and_exact_counts(http: httpx.Client, make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    follow(http, bob, alice)
    follow(http, bob, alice)  # twice is a no-op
    assert account(http, alice)["followers_count"] == 1
    assert account(http, bob)["following_count"] == 1
    itself = http.post(f"/api/v1/accounts/{bob.id}/follow", headers=bob.headers)
    assert itself.status_code == 403 and itself.json()["error"]
    unknown = http.post("/api/v1/accounts/12345/follow", headers=bob.headers)
    assert unknown.status_code == 404
    assert http.post(f"/api/v1/accounts/{alice.id}/follow").status_code == 401
    rels = http.get("/api/v1/accounts/relationships", params={"id[]": [alice.id, bob.id]}, headers=bob.headers)
    assert [(r["id"], r["following"], r["followed_by"]) for r in rels.json()] == [
        (alice.id, True, False),
        (bob.id, False, False),
    ]
    reverse = http.get("/api/v1/accounts/relationships", params={"id[]": bob.id}, headers=alice.headers).json()
    assert reverse[0]["followed_by"] is True
    unfollow(http, bob, alice)
    unfollow(http, bob, alice)
    assert account(http, alice)["followers_count"] == 0
    assert account(http, bob)["following_count"] == 0


def test_concurrent_follows_count_once(http: httpx.Client, make_user: UserFactory, base_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    alice, bob = make_user(), make_user()

    def attempt(_: int) -> int:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            return client.post(f"/api/v1/accounts/{alice.id}/follow", headers=bob.headers).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(attempt, range(6))) == {200}
    assert account(http, alice)["followers_count"] == 1
    followers = http.get(f"/api/v1/accounts/{alice.id}/followers").json()
    assert [a["id"] for a in followers] == [bob.id]


def test_followers_and_following_are_paged_with_link_headers(http: httpx.Client, make_user: UserFactory) -> None:
    star = make_user()
    fans = [make_user() for _ in range(5)]
    for fan in fans:
        follow(http, fan, star)
    seen: list[str] = []
    url: str | None = f"/api/v1/accounts/{star.id}/followers?limit=2"
    while url:
        response = http.get(url)
        assert response.status_code == 200
        page = response.json()
        if not page:
            break
        seen += [a["id"] for a in page]
        url = response.links.get("next", {}).get("url")
    assert seen == [f.id for f in reversed(fans)]  # newest follow first
    following = http.get(f"/api/v1/accounts/{fans[0].id}/following").json()
    assert [a["id"] for a in following] == [star.id]
    assert account(http, star)["followers_count"] == 5


def test_status_crud_and_validation(http: httpx.Client, make_user: UserFactory) -> None:
    alice, mallory = make_user(), make_user()
    status = post(http, alice, "line one\nline <two>", visibility="unlisted", spoiler_text="cw", sensitive="true")
    assert status["visibility"] == "unlisted" and status["sensitive"] is True and status["spoiler_text"] == "cw"
    assert status["content"] == "<p>line one<br />line &lt;two&gt;</p>"
    fetched = http.get(f"/api/v1/statuses/{status['id']}").json()
    assert fetched["id"] == status["id"] and fetched["account"]["username"] == alice.username
    assert account(http, alice)["statuses_count"] == 1
    for bad in (
        {"status": ""},
        {"status": "x" * 2201},
        {"status": "hi", "visibility": "secret"},
        {"status": "hi", "in_reply_to_id": "abc"},
    ):
        response = http.post("/api/v1/statuses", headers=alice.headers, data=bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]
    missing_parent = http.post("/api/v1/statuses", headers=alice.headers, data={"status": "re", "in_reply_to_id": "1"})
    assert missing_parent.status_code == 404
    assert account(http, alice)["statuses_count"] == 1  # none of the bad posts changed anything
    forbidden = http.delete(f"/api/v1/statuses/{status['id']}", headers=mallory.headers)
    assert forbidden.status_code == 403
    deleted = http.delete(f"/api/v1/statuses/{status['id']}", headers=alice.headers)
    assert deleted.status_code == 200 and deleted.json()["text"] == "line one\nline <two>"
    assert http.get(f"/api/v1/statuses/{status['id']}").status_code == 404
    assert account(http, alice)["statuses_count"] == 0


def test_idempotency_key_makes_one_post(http: httpx.Client, make_user: UserFactory) -> None:
    alice = make_user()
    headers = {**alice.headers, "Idempotency-Key": "retry-me-1"}
    first = http.post("/api/v1/statuses", headers=headers, data={"status": "once"}).json()
    second = http.post("/api/v1/statuses", headers=headers, data={"status": "once"}).json()
    assert first["id"] == second["id"]
    assert account(http, alice)["statuses_count"] == 1


def test_private_posts_are_for_followers_only(http: httpx.Client, make_user: UserFactory) -> None:
    alice, friend, stranger = make_user(), make_user(), make_user()
    follow(http, friend, alice)
    secret = post(http, alice, "followers only", visibility="private")
    assert http.get(f"/api/v1/statuses/{secret['id']}", headers=friend.headers).status_code == 200
    assert http.get(f"/api/v1/statuses/{secret['id']}", headers=stranger.headers).status_code == 404
    assert http.get(f"/api/v1/statuses/{secret['id']}").status_code == 404
    listed = http.get(f"/api/v1/accounts/{alice.id}/statuses", headers=stranger.headers).json()
    assert secret["id"] not in [s["id"] for s in listed]
    eventually(lambda: secret["id"] in home_ids(http, friend))


def test_account_statuses_are_paged(http: httpx.Client, make_user: UserFactory) -> None:
    alice = make_user()
    ids = [post(http, alice, f"post {i}")["id"] for i in range(5)]
    first = http.get(f"/api/v1/accounts/{alice.id}/statuses", params={"limit": 2})
    assert [s["id"] for s in first.json()] == ids[::-1][:2]
    second = http.get(first.links["next"]["url"]).json()
    assert [s["id"] for s in second] == ids[::-1][2:4]
    newer = http.get(f"/api/v1/accounts/{alice.id}/statuses", params={"min_id": ids[1], "limit": 2}).json()
    assert [s["id"] for s in newer] == [ids[3], ids[2]]


def test_backfill_on_follow_and_removal_on_unfollow(http: httpx.Client, make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    home(http, bob)
    posts = [post(http, alice, f"old {i}")["id"] for i in range(3)]
    follow(http, bob, alice)
    assert home_ids(http, bob) == posts[::-1]  # backfilled before the follow answered
    unfollow(http, bob, alice)
    assert home_ids(http, bob) == []


def test_deleted_post_disappears_from_every_feed(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis
) -> None:
    alice = make_user()
    fans = [make_user() for _ in range(2)]
    for fan in fans:
        home(http, fan)
        follow(http, fan, alice)
    status = post(http, alice, "regrettable")
    for fan in fans:
        eventually(lambda fan=fan: status["id"] in home_ids(http, fan))
    assert http.delete(f"/api/v1/statuses/{status['id']}", headers=alice.headers).status_code == 200
    for fan in fans:
        assert status["id"] not in home_ids(http, fan)  # gone at once for readers
        eventually(lambda fan=fan: redis_client.zscore(timeline_key(int(fan.id)), member(int(status["id"]))) is None)


def test_feed_pagination_with_max_since_and_min_id(http: httpx.Client, make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    home(http, bob)
    follow(http, bob, alice)
    ids = [post(http, alice, f"p{i}")["id"] for i in range(7)]
    newest_first = ids[::-1]
    eventually(lambda: home_ids(http, bob, limit=40) == newest_first)
    page = http.get("/api/v1/timelines/home", headers=bob.headers, params={"limit": 3})
    assert [s["id"] for s in page.json()] == newest_first[:3]
    following = http.get(page.links["next"]["url"], headers=bob.headers).json()
    assert [s["id"] for s in following] == newest_first[3:6]
    assert home_ids(http, bob, since_id=ids[4]) == newest_first[:2]
    assert home_ids(http, bob, min_id=ids[1], limit=2) == [ids[3], ids[2]]
    assert home_ids(http, bob, max_id=ids[3], since_id=ids[0]) == [ids[2], ids[1]]
    assert http.get("/api/v1/timelines/home", headers=bob.headers, params={"max_id": "nope"}).status_code == 422
    assert len(home(http, bob, limit=1000)) == 7  # limit is clamped to 40, not refused


def test_celebrity_posts_are_pulled_and_cross_the_threshold_both_ways(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis
) -> None:
    star = make_user()
    fans = [make_user() for _ in range(3)]
    for fan in fans:
        home(http, fan)
    follow(http, fans[0], star)
    follow(http, fans[1], star)
    pushed = post(http, star, "while ordinary")
    for fan in fans[:2]:
        eventually(lambda fan=fan: pushed["id"] in home_ids(http, fan))
    follow(http, fans[2], star)  # threshold (3) reached: promoted
    eventually(lambda: redis_client.exists(celeb_ready_key(int(star.id))) == 1)
    pulled = post(http, star, "as a celebrity")
    for fan in fans:
        eventually(lambda fan=fan: home_ids(http, fan)[:2] == [pulled["id"], pushed["id"]])
    # Pull, not push: one outbox entry, no inbox writes for the followers.
    assert redis_client.zscore(outbox_key(int(star.id)), member(int(pulled["id"]))) is not None
    assert all(redis_client.zscore(timeline_key(int(f.id)), member(int(pulled["id"]))) is None for f in fans)
    unfollow(http, fans[2], star)
    unfollow(http, fans[1], star)  # below the low mark (2): demoted
    eventually(lambda: redis_client.exists(celeb_ready_key(int(star.id))) == 0)
    eventually(lambda: redis_client.exists(outbox_key(int(star.id))) == 0)
    pushed_again = post(http, star, "ordinary again")
    eventually(lambda: home_ids(http, fans[0])[:3] == [pushed_again["id"], pulled["id"], pushed["id"]])
    assert len(set(home_ids(http, fans[0]))) == len(home_ids(http, fans[0]))
    assert pulled["id"] not in home_ids(http, fans[2])


def test_inactive_or_flushed_timeline_is_rebuilt_on_read(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis
) -> None:
    alice, bob = make_user(), make_user()
    follow(http, bob, alice)  # bob never read his feed: inactive, no fan-out to him
    status = post(http, alice, "while bob was away")
    eventually(lambda: status["id"] in home_ids(http, alice))
    time.sleep(0.5)
    assert redis_client.zscore(timeline_key(int(bob.id)), member(int(status["id"]))) is None
    assert status["id"] in home_ids(http, bob)  # rebuilt from the graph on read
    # Lose everything Redis knew about bob's feed: the read still answers in full.
    redis_client.delete(timeline_key(int(bob.id)), active_key(int(bob.id)), celebs_key(int(bob.id)))
    assert status["id"] in home_ids(http, bob)


def seed_followers(session: neo4j.Session, redis_client: redis.Redis, author_id: int, count: int) -> list[int]:
    """``count`` active follower accounts made straight in the graph (sign-up over HTTP would be slow)."""
    base = int(time.time() * 1000) * 1000
    ids = [base + i for i in range(count)]
    session.execute_write(
        lambda tx: tx.run(
            """
            MATCH (a:Account {id: $author})
            UNWIND $ids AS fid
            CREATE (f:Account {id: fid, username: 'seed' + toString(fid), username_key: 'seed' + toString(fid),
                               email_key: toString(fid) + '@seed.example', followers_count: 0,
                               following_count: 1, statuses_count: 0, celebrity: false, created_at: 0})
            CREATE (f)-[:FOLLOWS {id: fid, created_at: 0}]->(a)
            """,
            author=author_id,
            ids=ids,
        ).consume()
    )
    mark_active(redis_client, ids)
    return ids


def mark_active(redis_client: redis.Redis, ids: list[int]) -> None:
    """The accounts count as readers whose inboxes are kept (fan-out writes them): one pipeline, whatever their
    slots on a Redis Cluster."""
    with redis_client.pipeline(transaction=False) as pipe:
        for account_id in ids:
            pipe.set(active_key(account_id), 1)
        pipe.execute()


def test_fanout_worker_killed_mid_batch_loses_nothing(
    http: httpx.Client, make_user: UserFactory, stack: Stack, graph_session: neo4j.Session, redis_client: redis.Redis
) -> None:
    author = make_user()
    # Below the celebrity threshold in the graph counter, so the post is pushed to all of them.
    followers = seed_followers(graph_session, redis_client, int(author.id), 400)
    status = post(http, author, "survives a crash")
    sid = member(int(status["id"]))
    from actors.registry import fanout_name, host_name

    settings = stack.settings
    for host in {host_name(fanout_name(i), settings) for i in range(settings.fanout_workers)}:
        ray.kill(ray.get_actor(host, namespace=settings.ray_namespace), no_restart=False)

    def delivered_to_all() -> bool:
        with redis_client.pipeline(transaction=False) as pipe:
            for follower in followers:
                pipe.zscore(timeline_key(follower), sid)
            return all(score is not None for score in pipe.execute())

    eventually(delivered_to_all, timeout=60)


def test_restarted_inbox_actor_recovers_its_timelines(http: httpx.Client, make_user: UserFactory, stack: Stack) -> None:
    alice, bob = make_user(), make_user()
    home(http, bob)
    follow(http, bob, alice)
    first = post(http, alice, "before the restart")
    eventually(lambda: first["id"] in home_ids(http, bob))
    from actors.registry import host_name, inbox_name, shard_of

    shard = shard_of(int(bob.id), stack.settings.inbox_shards)
    host = host_name(inbox_name(shard), stack.settings)
    ray.kill(ray.get_actor(host, namespace=stack.settings.ray_namespace), no_restart=False)
    assert first["id"] in home_ids(http, bob)
    second = post(http, alice, "after the restart")
    eventually(lambda: home_ids(http, bob)[:2] == [second["id"], first["id"]])


def test_sweeper_delivers_a_post_whose_event_was_lost(
    http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session
) -> None:
    """A crash between the graph write and the stream append must not strand the post."""
    from ids import SnowflakeGenerator

    alice, bob = make_user(), make_user()
    home(http, bob)
    follow(http, bob, alice)
    status_id = SnowflakeGenerator(1023).next_id()
    graph_session.execute_write(
        lambda tx: tx.run(
            "CREATE (s:Status {id: $id, account_id: $aid, text: 'stranded', visibility: 'public', media_ids: [],"
            " created_at: $now, delivered: false, replies_count: 0, reblogs_count: 0, favourites_count: 0,"
            " spoiler_text: '', sensitive: false})",
            id=status_id,
            aid=int(alice.id),
            now=int(time.time() * 1000),
        ).consume()
    )
    eventually(lambda: str(status_id) in home_ids(http, bob), timeout=60)


@pytest.mark.parametrize("visibility", ["public", "unlisted"])
def test_mastodon_py_follow_post_and_timeline(base_url: str, visibility: str) -> None:
    from mastodon import Mastodon

    from tests.conftest import unique_name

    client_id, secret = Mastodon.create_app("feed-test", api_base_url=base_url, scopes=["read", "write", "follow"])
    clients = []
    for _ in range(2):
        name = unique_name("mf")
        api = Mastodon(client_id=client_id, client_secret=secret, api_base_url=base_url, version_check_mode="none")
        api.create_account(
            name, "a long password", f"{name}@example.org", agreement=True, scopes=["read", "write", "follow"]
        )
        clients.append(api)
    one, two = clients
    me_one, me_two = one.account_verify_credentials(), two.account_verify_credentials()
    one.timeline_home()
    two.timeline_home()
    one.account_follow(me_two.id)
    two.account_follow(me_one.id)
    first = one.status_post("from one", visibility=visibility)
    second = two.status_post("from two", visibility=visibility)
    eventually(lambda: {s.id for s in one.timeline_home()} >= {first.id, second.id})
    eventually(lambda: {s.id for s in two.timeline_home()} >= {first.id, second.id})
    assert one.account_relationships(me_two.id)[0].following is True


def test_late_fan_out_after_an_unfollow_does_not_bring_posts_back(
    http: httpx.Client, make_user: UserFactory, stack: Stack, redis_client: redis.Redis
) -> None:
    """A fan-out or promotion that read the follower list just before an unfollow finishes after it."""
    from actors.registry import ActorDirectory

    author, reader = make_user(), make_user()
    home(http, reader)
    follow(http, reader, author)
    status = post(http, author, "in flight")
    eventually(lambda: status["id"] in home_ids(http, reader))
    unfollow(http, reader, author)
    assert status["id"] not in home_ids(http, reader)
    inbox = ActorDirectory(stack.settings).inbox_for(int(reader.id))
    # What the in-flight fan-out and a concurrent promotion would now write for the old follower:
    assert ray.get(inbox.deliver.remote([(int(status["id"]), None)], [int(reader.id)], int(author.id))) == 0
    ray.get(inbox.follow_celebrity.remote(int(author.id), [int(reader.id)]))
    assert status["id"] not in home_ids(http, reader)
    assert redis_client.sismember(celebs_key(int(reader.id)), author.id) == 0
    follow(http, reader, author)  # following again lifts the guard at once
    assert status["id"] in home_ids(http, reader)
