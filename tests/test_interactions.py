"""Likes, comments, shares, notifications and live push, end to end against the real stack."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import neo4j
import orjson
import pytest
import ray
import redis
import websockets

from actors.registry import LIKE_PERSISTER, host_name
from redis_store.events import STREAM
from redis_store.likes import ABANDONED_MS, LikeStore, favs_key, outbox_key, published_key
from redis_store.server import start_redis_server
from stack import Stack
from tests.conftest import REDIS_CLUSTER, User, UserFactory
from tests.test_feed import eventually, follow, home, home_ids, post


def like(http: httpx.Client, user: User, status_id: str) -> dict:
    response = http.post(f"/api/v1/statuses/{status_id}/favourite", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def status_of(http: httpx.Client, user: User, status_id: str) -> dict:
    return http.get(f"/api/v1/statuses/{status_id}", headers=user.headers).json()


def graph_likes(session: neo4j.Session, status_id: str) -> tuple[int, int]:
    """(stored favourites_count, counted LIKED edges) in the graph."""
    row = session.execute_read(
        lambda tx: tx.run(
            "MATCH (s:Status {id: $id}) RETURN s.favourites_count AS stored, COUNT { (s)<-[:LIKED]-() } AS n",
            id=int(status_id),
        ).single()
    )
    return row["stored"], row["n"]


def notifications(http: httpx.Client, user: User, **params: object) -> list[dict]:
    response = http.get("/api/v1/notifications", headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_like_is_instant_idempotent_and_reversible(http: httpx.Client, make_user: UserFactory) -> None:
    author, fan = make_user(), make_user()
    status = post(http, author, "like me")
    liked = like(http, fan, status["id"])
    assert liked["favourited"] is True and liked["favourites_count"] == 1
    assert like(http, fan, status["id"])["favourites_count"] == 1  # twice counts once
    assert status_of(http, author, status["id"])["favourited"] is False
    favourites = http.get("/api/v1/favourites", headers=fan.headers).json()
    assert [s["id"] for s in favourites] == [status["id"]]
    undone = http.post(f"/api/v1/statuses/{status['id']}/unfavourite", headers=fan.headers).json()
    assert undone["favourited"] is False and undone["favourites_count"] == 0
    assert http.get("/api/v1/favourites", headers=fan.headers).json() == []
    assert http.post("/api/v1/statuses/1/favourite", headers=fan.headers).status_code == 404


def test_concurrent_likes_count_each_liker_once_and_reach_the_graph(
    http: httpx.Client, make_user: UserFactory, base_url: str, graph_session: neo4j.Session
) -> None:
    author = make_user()
    fans = [make_user() for _ in range(8)]
    status = post(http, author, "popular")

    def attempt(fan: User) -> int:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            return client.post(f"/api/v1/statuses/{status['id']}/favourite", headers=fan.headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(attempt, fans * 3)) == {200}  # each fan three times, all at once
    assert status_of(http, author, status["id"])["favourites_count"] == 8
    eventually(lambda: graph_likes(graph_session, status["id"]) == (8, 8))
    likers = http.get(f"/api/v1/statuses/{status['id']}/favourited_by").json()
    assert sorted(a["id"] for a in likers) == sorted(f.id for f in fans)


def test_like_counts_converge_after_the_persister_crashes(
    http: httpx.Client, make_user: UserFactory, stack: Stack, graph_session: neo4j.Session
) -> None:
    author = make_user()
    fans = [make_user() for _ in range(5)]
    status = post(http, author, "crash test")
    for fan in fans[:3]:
        like(http, fan, status["id"])
    persister = host_name(LIKE_PERSISTER, stack.settings)
    ray.kill(ray.get_actor(persister, namespace=stack.settings.ray_namespace), no_restart=False)
    for fan in fans[3:]:
        like(http, fan, status["id"])
    http.post(f"/api/v1/statuses/{status['id']}/unfavourite", headers=fans[0].headers)
    assert status_of(http, author, status["id"])["favourites_count"] == 4
    eventually(lambda: graph_likes(graph_session, status["id"]) == (4, 4), timeout=60)


def test_like_counts_survive_a_redis_restart(
    http: httpx.Client, make_user: UserFactory, stack: Stack, graph_session: neo4j.Session, redis_client: redis.Redis
) -> None:
    if REDIS_CLUSTER:
        pytest.skip("kills the single Redis server")
    author = make_user()
    fans = [make_user() for _ in range(3)]
    status = post(http, author, "durable likes")
    for fan in fans[:2]:
        like(http, fan, status["id"])
    old = next(p for p in stack.started if p.name == "redis server")
    old.stop()  # SIGTERM: the server flushes its append-only file before it exits
    stack.started[stack.started.index(old)] = start_redis_server(stack.state_dir, port=stack.settings.redis_port)
    eventually(lambda: redis_client.ping())
    eventually(lambda: http.get(f"/api/v1/statuses/{status['id']}", headers=author.headers).status_code == 200)
    assert status_of(http, fans[0], status["id"])["favourited"] is True
    assert like(http, fans[2], status["id"])["favourites_count"] == 3
    assert status_of(http, author, status["id"])["favourites_count"] == 3
    eventually(lambda: graph_likes(graph_session, status["id"]) == (3, 3), timeout=60)


def test_comments_form_a_paged_thread(http: httpx.Client, make_user: UserFactory) -> None:
    author, commenter = make_user(), make_user()
    root = post(http, author, "root")
    replies = [post(http, commenter, f"reply {i}", in_reply_to_id=root["id"]) for i in range(5)]
    nested = post(http, author, "nested", in_reply_to_id=replies[0]["id"])
    assert nested["in_reply_to_account_id"] == commenter.id
    assert status_of(http, author, root["id"])["replies_count"] == 5
    first = http.get(f"/api/v1/statuses/{root['id']}/context", params={"limit": 4})
    assert first.json()["ancestors"] == []
    seen = [s["id"] for s in first.json()["descendants"]]
    assert len(seen) == 4 and "next" in first.links
    rest = http.get(first.links["next"]["url"]).json()["descendants"]
    seen += [s["id"] for s in rest]
    assert seen == sorted([r["id"] for r in replies] + [nested["id"]], key=int)
    up = http.get(f"/api/v1/statuses/{nested['id']}/context").json()
    assert [s["id"] for s in up["ancestors"]] == [root["id"], replies[0]["id"]]


def test_post_author_or_comment_author_can_delete_a_comment(http: httpx.Client, make_user: UserFactory) -> None:
    author, commenter, stranger = make_user(), make_user(), make_user()
    root = post(http, author, "my post")
    first = post(http, commenter, "first!", in_reply_to_id=root["id"])
    second = post(http, commenter, "second", in_reply_to_id=root["id"])
    assert http.delete(f"/api/v1/statuses/{first['id']}", headers=stranger.headers).status_code == 403
    assert http.delete(f"/api/v1/statuses/{first['id']}", headers=author.headers).status_code == 200
    assert http.delete(f"/api/v1/statuses/{second['id']}", headers=commenter.headers).status_code == 200
    assert status_of(http, author, root["id"])["replies_count"] == 0


def test_a_share_reaches_the_sharers_followers_once(http: httpx.Client, make_user: UserFactory) -> None:
    creator, sharer_one, sharer_two, reader = make_user(), make_user(), make_user(), make_user()
    home(http, reader)
    follow(http, reader, sharer_one)
    follow(http, reader, sharer_two)
    original = post(http, creator, "worth sharing")
    first = http.post(f"/api/v1/statuses/{original['id']}/reblog", headers=sharer_one.headers)
    assert first.status_code == 200 and first.json()["reblog"]["id"] == original["id"]
    again = http.post(f"/api/v1/statuses/{original['id']}/reblog", headers=sharer_one.headers).json()
    assert again["id"] == first.json()["id"]  # sharing twice is one share
    http.post(f"/api/v1/statuses/{original['id']}/reblog", headers=sharer_two.headers)
    eventually(lambda: first.json()["id"] in home_ids(http, reader))
    feed = home(http, reader)
    shared = [s for s in feed if (s["reblog"] or s)["id"] == original["id"]]
    assert len(shared) == 1 and shared[0]["reblog"]["content"] == "<p>worth sharing</p>"
    assert status_of(http, creator, original["id"])["reblogs_count"] == 2
    by = http.get(f"/api/v1/statuses/{original['id']}/reblogged_by").json()
    assert sorted(a["id"] for a in by) == sorted([sharer_one.id, sharer_two.id])
    assert status_of(http, sharer_one, original["id"])["reblogged"] is True
    undone = http.post(f"/api/v1/statuses/{original['id']}/unreblog", headers=sharer_one.headers).json()
    assert undone["reblogged"] is False and undone["reblogs_count"] == 1


def test_every_notification_type_end_to_end(http: httpx.Client, make_user: UserFactory) -> None:
    author, fan, other = make_user(), make_user(), make_user()
    status = post(http, author, "notify me")
    like(http, author, status["id"])  # your own like notifies nobody
    follow(http, fan, author)
    like(http, fan, status["id"])
    http.post(f"/api/v1/statuses/{status['id']}/unfavourite", headers=fan.headers)
    like(http, fan, status["id"])  # like, unlike, like: one notification
    post(http, fan, "nice", in_reply_to_id=status["id"])
    http.post(f"/api/v1/statuses/{status['id']}/reblog", headers=fan.headers)
    like(http, other, status["id"])
    eventually(lambda: len(notifications(http, author)) == 5)
    found = notifications(http, author)
    assert sorted(n["type"] for n in found) == ["favourite", "favourite", "follow", "mention", "reblog"]
    assert all(n["account"]["id"] in (fan.id, other.id) for n in found)
    assert {n["status"]["id"] for n in found if n["type"] == "favourite"} == {status["id"]}
    only_likes = notifications(http, author, **{"types[]": "favourite"})
    assert [n["type"] for n in only_likes] == ["favourite", "favourite"]
    no_likes = notifications(http, author, **{"exclude_types[]": ["favourite", "reblog"]})
    assert sorted(n["type"] for n in no_likes) == ["follow", "mention"]
    page = http.get("/api/v1/notifications", headers=author.headers, params={"limit": 2})
    assert len(page.json()) == 2 and "next" in page.links
    grouped = http.get("/api/v2/notifications", headers=author.headers).json()
    likes_group = next(g for g in grouped["notification_groups"] if g["type"] == "favourite")
    assert likes_group["notifications_count"] == 2
    assert sorted(likes_group["sample_account_ids"]) == sorted([fan.id, other.id])
    assert likes_group["status_id"] == status["id"]
    assert {a["id"] for a in grouped["accounts"]} == {fan.id, other.id}
    assert http.get("/api/v1/notifications/unread_count", headers=author.headers).json() == {"count": 5}
    newest = found[0]["id"]
    marker = http.post("/api/v1/markers", headers=author.headers, data={"notifications[last_read_id]": newest})
    assert marker.json()["notifications"]["last_read_id"] == newest
    assert http.get("/api/v1/notifications/unread_count", headers=author.headers).json() == {"count": 0}
    one = found[-1]["id"]
    assert http.get(f"/api/v1/notifications/{one}", headers=author.headers).json()["id"] == one
    assert http.get(f"/api/v1/notifications/{one}", headers=fan.headers).status_code == 404
    assert http.post(f"/api/v1/notifications/{one}/dismiss", headers=fan.headers).status_code == 404
    assert http.post(f"/api/v1/notifications/{one}/dismiss", headers=author.headers).status_code == 200
    assert len(notifications(http, author)) == 4
    assert http.post("/api/v1/notifications/clear", headers=author.headers).status_code == 200
    assert notifications(http, author) == []
    assert notifications(http, fan) == []  # the author's actions on their own post notified nobody else


class SseListener:
    """Reads an SSE stream in a thread into a queue; every wait is bounded, and ``close`` ends the thread."""

    def __init__(self, base_url: str, user: User, path: str) -> None:
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.status: int | None = None
        self.content_type = ""
        self.thread = threading.Thread(target=self._read, args=(base_url, user, path), daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "the stream did not open"

    def _read(self, base_url: str, user: User, path: str) -> None:
        with httpx.Client(base_url=base_url, timeout=httpx.Timeout(30, read=30)) as client:
            with client.stream("GET", path, headers=user.headers) as response:
                self.status, self.content_type = response.status_code, response.headers.get("content-type", "")
                event = None
                for line in response.iter_lines():  # heartbeats arrive every second: ``stop`` is seen promptly
                    if self.stop.is_set():
                        return
                    if line.startswith(":"):
                        self.ready.set()
                    elif line.startswith("event: "):
                        event = line[len("event: ") :]
                    elif line.startswith("data: ") and event:
                        payload = line[len("data: ") :]
                        self.events.put((event, orjson.loads(payload) if payload.startswith("{") else {"id": payload}))

    def next(self, timeout: float = 30) -> tuple[str, dict]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_live_push_over_server_sent_events(http: httpx.Client, make_user: UserFactory, base_url: str) -> None:
    listener, friend = make_user(), make_user()
    home(http, listener)
    follow(http, listener, friend)
    stream = SseListener(base_url, listener, "/api/v1/streaming/user")
    try:
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        follow(http, friend, listener)
        kind, notification = stream.next()
        assert kind == "notification" and notification["type"] == "follow"
        assert notification["account"]["id"] == friend.id
        status = post(http, friend, "live!")
        kind, update = stream.next()
        assert kind == "update" and update["id"] == status["id"]
        http.delete(f"/api/v1/statuses/{status['id']}", headers=friend.headers)
        assert stream.next() == ("delete", {"id": status["id"]})
    finally:
        stream.close()
    assert http.get("/api/v1/streaming/health").text == "OK"
    assert http.get("/api/v1/streaming/user").status_code == 401


def test_live_notifications_over_websocket(http: httpx.Client, make_user: UserFactory, base_url: str) -> None:
    author, fan = make_user(), make_user()
    status = post(http, author, "watch the socket")
    url = (
        base_url.replace("http://", "ws://") + f"/api/v1/streaming?stream=user:notification&access_token={author.token}"
    )

    async def listen() -> dict:
        async with websockets.connect(url, open_timeout=30) as socket:
            await asyncio.sleep(0.5)  # subscribed before the like happens
            await asyncio.to_thread(like, http, fan, status["id"])
            frame = orjson.loads(await asyncio.wait_for(socket.recv(), timeout=30))
            return frame

    frame = asyncio.run(listen())
    assert frame["stream"] == ["user:notification"] and frame["event"] == "notification"
    payload = orjson.loads(frame["payload"])
    assert payload["type"] == "favourite" and payload["account"]["id"] == fan.id

    async def rejected() -> None:
        bad = base_url.replace("http://", "ws://") + "/api/v1/streaming?stream=user&access_token=nope"
        async with websockets.connect(bad, open_timeout=30) as socket:
            await socket.recv()

    with pytest.raises(websockets.exceptions.WebSocketException):
        asyncio.run(rejected())


def test_rate_limited_likes_answer_429_with_retry_after(http: httpx.Client, make_user: UserFactory) -> None:
    author, eager = make_user(), make_user()
    status = post(http, author, "rate me")
    statuses = [
        http.post(f"/api/v1/statuses/{status['id']}/favourite", headers=eager.headers).status_code for _ in range(40)
    ]
    assert set(statuses) == {200}
    refused = http.post(f"/api/v1/statuses/{status['id']}/favourite", headers=eager.headers)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["X-RateLimit-Limit"] == "40" and refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.json()["error"]


def test_spam_comments_are_rejected(http: httpx.Client, make_user: UserFactory) -> None:
    author, spammer = make_user(), make_user()
    posts = [post(http, author, f"post {i}") for i in range(4)]
    for target in posts[:2]:
        post(http, spammer, "Buy followers now", in_reply_to_id=target["id"])
    repeated = http.post(
        "/api/v1/statuses",
        headers=spammer.headers,
        data={"status": "buy  FOLLOWERS now", "in_reply_to_id": posts[2]["id"]},
    )
    assert repeated.status_code == 422 and "spam" in repeated.json()["error"]
    linker = make_user()
    for i in range(3):
        post(http, linker, f"see https://example.org/{i}", in_reply_to_id=posts[i]["id"])
    burst = http.post(
        "/api/v1/statuses",
        headers=linker.headers,
        data={"status": "more at https://example.org/x", "in_reply_to_id": posts[3]["id"]},
    )
    assert burst.status_code == 422 and "link" in burst.json()["error"]
    # The rejected comments changed nothing: only the linker's got onto posts[2], none onto posts[3].
    assert status_of(http, author, posts[2]["id"])["replies_count"] == 1
    assert status_of(http, author, posts[3]["id"])["replies_count"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/statuses"),
        ("DELETE", "/api/v1/statuses/{status}"),
        ("POST", "/api/v1/statuses/{status}/favourite"),
        ("POST", "/api/v1/statuses/{status}/unfavourite"),
        ("POST", "/api/v1/statuses/{status}/reblog"),
        ("POST", "/api/v1/statuses/{status}/unreblog"),
        ("GET", "/api/v1/favourites"),
        ("GET", "/api/v1/notifications"),
        ("GET", "/api/v2/notifications"),
        ("POST", "/api/v1/notifications/clear"),
        ("GET", "/api/v1/notifications/unread_count"),
        ("GET", "/api/v1/markers"),
        ("GET", "/api/v1/timelines/home"),
        ("POST", "/api/v1/accounts/{account}/follow"),
        ("GET", "/api/v1/accounts/relationships"),
    ],
)
def test_endpoints_reject_missing_and_bad_tokens(
    http: httpx.Client, make_user: UserFactory, method: str, path: str
) -> None:
    owner = make_user()
    status = post(http, owner, "target")
    url = path.format(status=status["id"], account=owner.id)
    assert http.request(method, url).status_code == 401
    assert http.request(method, url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert status_of(http, owner, status["id"])["favourites_count"] == 0


def test_mastodon_py_interactions_notifications_and_stream(base_url: str) -> None:
    from mastodon import Mastodon, StreamListener

    from tests.conftest import unique_name

    client_id, secret = Mastodon.create_app("social-test", api_base_url=base_url, scopes=["read", "write", "follow"])
    apis = []
    for _ in range(2):
        name = unique_name("ms")
        api = Mastodon(client_id=client_id, client_secret=secret, api_base_url=base_url, version_check_mode="none")
        api.create_account(
            name, "a long password", f"{name}@example.org", agreement=True, scopes=["read", "write", "follow"]
        )
        apis.append(api)
    creator, fan = apis
    received: list[str] = []
    connected = threading.Event()

    class Listener(StreamListener):
        def on_notification(self, notification: dict) -> None:
            received.append(notification["type"])

        def handle_heartbeat(self) -> None:
            connected.set()

    handle = creator.stream_user(Listener(), run_async=True, reconnect_async=False)
    try:
        assert connected.wait(30)
        status = creator.status_post("made with Mastodon.py")
        fan.status_favourite(status.id)
        fan.status_post("great shot", in_reply_to_id=status.id)
        fan.status_reblog(status.id)
        eventually(lambda: len(creator.notifications()) == 3)
        assert sorted(n.type for n in creator.notifications()) == ["favourite", "mention", "reblog"]
        eventually(lambda: sorted(received) == ["favourite", "mention", "reblog"])
    finally:
        handle.close()
    grouped = creator.grouped_notifications()
    assert sorted(g.type for g in grouped.notification_groups) == ["favourite", "mention", "reblog"]


def test_live_push_of_a_celebrity_post(
    http: httpx.Client, make_user: UserFactory, base_url: str, redis_client: redis.Redis
) -> None:
    from redis_store.timelines import celeb_ready_key

    star, listener = make_user(), make_user()
    home(http, listener)
    for fan in (listener, make_user(), make_user()):  # the threshold in tests is 3 followers
        follow(http, fan, star)
    eventually(lambda: redis_client.exists(celeb_ready_key(int(star.id))) == 1)
    stream = SseListener(base_url, listener, "/api/v1/streaming/user")
    try:
        status = post(http, star, "from the top")
        kind, update = stream.next()
        assert kind == "update" and update["id"] == status["id"]
    finally:
        stream.close()


def test_concurrent_shares_by_one_account_make_one_reblog(
    http: httpx.Client, make_user: UserFactory, base_url: str
) -> None:
    creator, sharer = make_user(), make_user()
    original = post(http, creator, "share once")

    def attempt(_: int) -> str:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            response = client.post(f"/api/v1/statuses/{original['id']}/reblog", headers=sharer.headers)
            assert response.status_code == 200, response.text
            return response.json()["id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert len(set(pool.map(attempt, range(6)))) == 1
    assert status_of(http, creator, original["id"])["reblogs_count"] == 1
    assert len(http.get(f"/api/v1/statuses/{original['id']}/reblogged_by").json()) == 1


def test_private_posts_do_not_leak_through_reblogs_or_short_pages(http: httpx.Client, make_user: UserFactory) -> None:
    author, stranger = make_user(), make_user()
    public = [post(http, author, f"public {i}")["id"] for i in range(3)]
    private = [post(http, author, f"private {i}", visibility="private")["id"] for i in range(22)]
    shared = http.post(f"/api/v1/statuses/{private[0]}/reblog", headers=author.headers).json()
    assert shared["visibility"] == "private"  # sharing your own private post keeps it among followers
    for viewer in ({}, stranger.headers):
        listed = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=viewer, params={"limit": 20}).json()
        assert [s["id"] for s in listed] == public[::-1]  # a full page of what the viewer may see
        assert http.get(f"/api/v1/statuses/{shared['id']}", headers=viewer).status_code == 404
    assert http.post(f"/api/v1/statuses/{shared['id']}/favourite", headers=stranger.headers).status_code == 404


def test_malformed_ids_and_bodies_are_4xx(http: httpx.Client, make_user: UserFactory) -> None:
    user = make_user()
    for bad in ("9999999999999999999", "²", "-1", "1e3"):
        assert http.get(f"/api/v1/statuses/{bad}").status_code == 404
        assert http.get(f"/api/v1/accounts/{bad}").status_code == 404
    huge = http.post("/api/v1/statuses", headers=user.headers, data={"status": "x", "media_ids[]": "9" * 20})
    assert huge.status_code == 422
    marker = http.post("/api/v1/markers", headers=user.headers, json={"home": "5"})
    assert marker.status_code == 422 and marker.json()["error"]


async def test_notifications_past_the_cap_are_deleted(stack: Stack) -> None:
    from redis_store.client import redis_from
    from redis_store.notifications import NotificationStore, list_key, records_key

    client = redis_from(stack.settings)
    store = NotificationStore(client, cap=2)
    recipient = 4242424242
    ids = [385125924313501696 + i for i in range(3)]
    for i, notification_id in enumerate(ids):
        record = {"id": notification_id, "type": "follow", "recipient_id": recipient, "account_id": i}
        assert await store.add(record)
    assert await client.zcard(list_key(recipient)) == 2
    assert await client.hexists(records_key(recipient), str(ids[0])) == 0  # the trimmed record is gone, not unlisted
    assert await client.hexists(records_key(recipient), str(ids[2])) == 1
    await client.aclose()


def test_a_partial_favourites_reload_never_counts_an_old_like_twice(
    http: httpx.Client, make_user: UserFactory, stack: Stack, redis_client: redis.Redis, graph_session: neo4j.Session
) -> None:
    """After Redis lost a heavy liker's set, only their newest likes come back; older ones live in the graph."""
    author, fan = make_user(), make_user()
    old, new = post(http, author, "old favourite"), post(http, author, "new favourite")
    like(http, fan, old["id"])
    like(http, fan, new["id"])
    eventually(
        lambda: graph_likes(graph_session, old["id"]) == (1, 1) and graph_likes(graph_session, new["id"]) == (1, 1)
    )
    # What a reload with a limit below this user's like count leaves: the newest like and the partial marker.
    redis_client.delete(favs_key(int(fan.id)))
    redis_client.zadd(favs_key(int(fan.id)), {"partial": -1, f"{int(new['id']):019d}": 1})
    assert like(http, fan, old["id"])["favourites_count"] == 1  # already liked, per the graph: no second count
    undone = http.post(f"/api/v1/statuses/{old['id']}/unfavourite", headers=fan.headers).json()
    assert undone["favourites_count"] == 0
    eventually(lambda: graph_likes(graph_session, old["id"]) == (0, 0))


async def test_a_like_a_crash_left_half_done_is_completed_by_its_retry(
    http: httpx.Client, make_user: UserFactory, stack: Stack, graph_session: neo4j.Session
) -> None:
    """The cluster's three steps (``redis_store.likes``), on whichever Redis the session runs: a like recorded in
    the user's slot whose event never reached the stream (a crash between the steps) is published by the client's
    retry, another one left behind by the user's next change, and a late copy of an older change of a pair is not
    appended after a newer one."""
    from redis_store.client import redis_from

    client = redis_from(stack.settings)
    store = LikeStore(client, stack.settings, in_steps=True)
    author, fan = make_user(), make_user()
    posts = [post(http, author, f"half-done {i}")["id"] for i in range(3)]
    like(http, fan, posts[0])  # loads the fan's favourites
    eventually(lambda: graph_likes(graph_session, posts[0])[1] == 1, timeout=60)
    fan_id = int(fan.id)

    def event(status_id: str, like_id: int) -> dict:
        return {
            "account_id": fan_id,
            "status_id": int(status_id),
            "status_account_id": int(author.id),
            "like_id": like_id,
            "created_at": 1,
        }

    async def half_done(status_id: str, age_ms: int) -> None:
        """What step 1 leaves when step 2 never happens: the like in ``favs:``, its event in the outbox."""
        seq = int(time.time() * 1_000_000) - age_ms * 1000
        like_id = int(status_id) + 1
        await client.zadd(favs_key(fan_id), {f"{int(status_id):019d}": like_id >> 12})
        data = orjson.dumps(event(status_id, like_id)).decode()
        await client.hset(outbox_key(fan_id), f"{int(status_id):019d}", f"{seq} like.created {data}")

    await half_done(posts[1], 0)
    changed, _ = await store.change("like.created", fan_id, int(posts[1]), int(posts[1]) + 2, 0, event(posts[1], 2))
    assert changed is False  # the like was made: the retry only publishes its event
    await half_done(posts[2], 2 * ABANDONED_MS)  # a publisher that died long ago
    await store.change("like.deleted", fan_id, int(posts[0]), int(posts[0]) + 3, 1, event(posts[0], 3))
    for status_id, n in ((posts[0], 0), (posts[1], 1), (posts[2], 1)):
        eventually(lambda s=status_id, n=n: graph_likes(graph_session, s)[1] == n, timeout=60)
    assert await client.hlen(outbox_key(fan_id)) == 1  # only the sequence number is left

    # A copy of the pair's like, older than its unlike (just published), arrives late: it is not appended.
    ((last_id, _),) = await client.xrevrange(STREAM, count=1)
    assert int(await client.get(published_key(fan_id, int(posts[0])))) > 0
    await half_done(posts[0], 2 * ABANDONED_MS)
    await client.zrem(favs_key(fan_id), f"{int(posts[0]):019d}")
    await store.change("like.deleted", fan_id, int(posts[0]), int(posts[0]) + 4, 0, event(posts[0], 4))
    appended = [orjson.loads(f["data"]) for _, f in await client.xrange(STREAM, min=f"({last_id}")]
    assert [e for e in appended if (e.get("account_id"), e.get("status_id")) == (fan_id, int(posts[0]))] == []
    await client.aclose()
