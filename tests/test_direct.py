"""Direct messages: a post whose audience is its mentions, and the conversations it makes.

Read paths checked: the status itself, its thread (context), home feeds (the
author's, a recipient's, a follower's), an account's statuses, notifications,
streaming (the ``direct`` stream over SSE and WebSocket; a follower's ``user``
stream gets nothing), favourite/reblog, conversations. Public and tag timelines
and search do not exist on this branch yet.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import neo4j
import orjson
import websockets
from mastodon import Mastodon, StreamListener

from ids import SnowflakeGenerator
from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow, home_ids, post
from tests.test_interactions import SseListener


def conversations(http: httpx.Client, user: User, path: str = "/api/v1/conversations", **params: object) -> list[dict]:
    response = http.get(path, headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def status_code(http: httpx.Client, user: User | None, status_id: str) -> int:
    return http.get(f"/api/v1/statuses/{status_id}", headers=user.headers if user else {}).status_code


def mention_ids(http: httpx.Client, user: User) -> list[str]:
    found = http.get("/api/v1/notifications", headers=user.headers, params={"types[]": "mention"}).json()
    return [n["status"]["id"] for n in found]


def test_a_direct_message_reaches_its_recipients_and_nobody_else(http: httpx.Client, make_user: UserFactory) -> None:
    author, bob, carol, follower, stranger = (make_user() for _ in range(5))
    for user in (bob, follower):
        home_ids(http, user)  # active, so fan-out would push to them
        follow(http, user, author)
    public = post(http, author, "a public post")
    dm = post(http, author, f"hi @{bob.username} and @{carol.username.upper()}", visibility="direct")
    assert dm["visibility"] == "direct"
    assert [m["id"] for m in dm["mentions"]] == [bob.id, carol.id]
    assert [m["acct"] for m in dm["mentions"]] == [bob.username, carol.username]

    # GET /statuses/:id: the author and each recipient; 404 (not 403) for everyone else.
    for user in (author, bob, carol):
        assert status_code(http, user, dm["id"]) == 200
    for user in (follower, stranger, None):
        assert status_code(http, user, dm["id"]) == 404

    # Notifications: a mention for each recipient.
    for user in (bob, carol):
        eventually(lambda user=user: dm["id"] in mention_ids(http, user), what="mention notification")
    assert mention_ids(http, follower) == []

    # Home feeds: in nobody's, though the fan-out of a later post reached the followers.
    later = post(http, author, "after the message")
    eventually(lambda: later["id"] in home_ids(http, follower), what="the later post's fan-out")
    for user in (author, bob, carol, follower):
        ids = home_ids(http, user)
        assert dm["id"] not in ids
    assert public["id"] in home_ids(http, follower)

    # An account's statuses: only its author sees it there.
    def on_profile(user: User | None) -> bool:
        headers = user.headers if user else {}
        found = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=headers).json()
        return dm["id"] in [s["id"] for s in found]

    assert on_profile(author)
    assert not any(on_profile(user) for user in (follower, stranger, None))

    # Favourite and reblog: strangers cannot reach it; nobody can share it.
    assert http.post(f"/api/v1/statuses/{dm['id']}/favourite", headers=stranger.headers).status_code == 404
    assert http.post(f"/api/v1/statuses/{dm['id']}/reblog", headers=bob.headers).status_code == 422

    # A direct reply to a public post is not in that post's thread for anyone outside the message.
    aside = post(http, bob, f"@{author.username} psst", visibility="direct", in_reply_to_id=public["id"])
    for user, sees in ((author, True), (bob, True), (follower, False), (stranger, False)):
        thread = http.get(f"/api/v1/statuses/{public['id']}/context", headers=user.headers).json()
        assert (aside["id"] in [s["id"] for s in thread["descendants"]]) is sees


def test_conversations_unread_read_delete_and_replies_keep_participants(
    http: httpx.Client, make_user: UserFactory
) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    first = post(http, alice, f"@{bob.username} @{carol.username} plans?", visibility="direct")
    eventually(lambda: len(conversations(http, bob)) == 1, what="bob's conversation")
    [convo] = conversations(http, bob)
    assert convo["unread"] is True and convo["last_status"]["id"] == first["id"]
    assert sorted(a["id"] for a in convo["accounts"]) == sorted([alice.id, carol.id])
    eventually(lambda: len(conversations(http, alice)) == 1, what="alice's conversation")
    assert conversations(http, alice)[0]["unread"] is False  # one's own message is read

    # A reply without mentions stays in the conversation, with every participant.
    reply = post(http, carol, "saturday", in_reply_to_id=first["id"])
    assert reply["visibility"] == "direct"
    assert sorted(m["id"] for m in reply["mentions"]) == sorted([alice.id, bob.id])
    eventually(lambda: conversations(http, bob)[0]["last_status"]["id"] == reply["id"], what="the reply")
    assert len(conversations(http, bob)) == 1 and status_code(http, bob, reply["id"]) == 200

    read = http.post(f"/api/v1/conversations/{convo['id']}/read", headers=bob.headers)
    assert read.status_code == 200 and read.json()["unread"] is False
    assert conversations(http, bob, "/api/v1/conversations/")[0]["unread"] is False  # trailing slash too

    # Another participant set is another conversation; pages follow the Link header.
    other = post(http, alice, f"just you @{bob.username}", visibility="direct")
    eventually(lambda: len(conversations(http, bob)) == 2, what="a second conversation")
    page = http.get("/api/v1/conversations", headers=bob.headers, params={"limit": 1})
    assert [c["last_status"]["id"] for c in page.json()] == [other["id"]]
    newest = page.json()[0]["id"]
    older = http.get(page.links["next"]["url"], headers=bob.headers).json()
    assert [c["id"] for c in older] == [convo["id"]]

    assert http.delete(f"/api/v1/conversations/{convo['id']}", headers=bob.headers).status_code == 200
    assert [c["id"] for c in conversations(http, bob)] == [newest]
    assert http.delete(f"/api/v1/conversations/{convo['id']}", headers=bob.headers).status_code == 404
    assert http.post(f"/api/v1/conversations/{convo['id']}/read", headers=carol.headers).status_code == 404  # bob's
    assert http.post("/api/v1/conversations/1/read", headers=bob.headers).status_code == 404


def test_direct_stream_over_sse_and_websocket(http: httpx.Client, make_user: UserFactory, base_url: str) -> None:
    author, recipient, follower = make_user(), make_user(), make_user()
    home_ids(http, follower)
    follow(http, follower, author)
    direct = SseListener(base_url, recipient, "/api/v1/streaming/direct")
    user_stream = SseListener(base_url, follower, "/api/v1/streaming/user")
    try:
        dm = post(http, author, f"@{recipient.username} live", visibility="direct")
        kind, payload = direct.next()
        assert kind == "conversation" and payload["last_status"]["id"] == dm["id"] and payload["unread"] is True
        marker = post(http, author, "a public marker")
        kind, payload = user_stream.next()
        assert (kind, payload["id"]) == ("update", marker["id"])  # the message came before it, and was not sent
    finally:
        direct.close()
        user_stream.close()

    url = base_url.replace("http://", "ws://") + f"/api/v1/streaming?stream=direct&access_token={recipient.token}"

    async def listen() -> dict:
        async with websockets.connect(url, open_timeout=30) as socket:
            await asyncio.to_thread(post, http, author, f"@{recipient.username} again", visibility="direct")
            return orjson.loads(await asyncio.wait_for(socket.recv(), timeout=30))

    frame = asyncio.run(listen())
    assert frame["stream"] == ["direct"] and frame["event"] == "conversation"
    assert orjson.loads(frame["payload"])["last_status"]["content"].endswith("again</p>")


def test_mastodon_py_direct_messages(base_url: str, make_user: UserFactory) -> None:
    sender, receiver = make_user(), make_user()
    sender_api = Mastodon(access_token=sender.token, api_base_url=base_url, version_check_mode="none")
    receiver_api = Mastodon(access_token=receiver.token, api_base_url=base_url, version_check_mode="none")
    received: list[dict] = []
    connected = threading.Event()

    class Listener(StreamListener):
        def on_conversation(self, conversation: dict) -> None:
            received.append(conversation)

        def handle_heartbeat(self) -> None:
            connected.set()

    handle = receiver_api.stream_direct(Listener(), run_async=True, reconnect_async=False)
    try:
        assert connected.wait(30)
        sent = sender_api.status_post(f"@{receiver.username} hello", visibility="direct")
        eventually(lambda: len(receiver_api.conversations()) == 1, what="the conversation")
        convo = receiver_api.conversations()[0]
        assert convo.unread is True and convo.last_status.id == sent.id
        eventually(lambda: len(received) == 1, what="the stream event")
        assert received[0]["last_status"]["id"] == sent.id
        assert receiver_api.conversations_read(convo.id).unread is False
    finally:
        handle.close()


def test_a_direct_message_whose_event_was_lost_still_reaches_its_recipient(
    http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session
) -> None:
    """A crash between the graph write and the stream append: the sweeper's event carries the audience."""
    author, recipient, follower = make_user(), make_user(), make_user()
    home_ids(http, follower)
    follow(http, follower, author)
    status_id = SnowflakeGenerator(1022).next_id()
    graph_session.execute_write(
        lambda tx: tx.run(
            "CREATE (s:Status {id: $id, account_id: $aid, text: 'stranded dm', visibility: 'direct', media_ids: [],"
            " mentions: [$rid], mention_names: [$rname], created_at: $now, delivered: false, replies_count: 0,"
            " reblogs_count: 0, favourites_count: 0, spoiler_text: '', sensitive: false})",
            id=status_id,
            aid=int(author.id),
            rid=int(recipient.id),
            rname=recipient.username,
            now=int(time.time() * 1000),
        ).consume()
    )
    eventually(lambda: str(status_id) in mention_ids(http, recipient), timeout=60, what="the mention")
    eventually(lambda: len(conversations(http, recipient)) == 1, what="the conversation")
    assert conversations(http, recipient)[0]["last_status"]["id"] == str(status_id)
    assert str(status_id) not in home_ids(http, follower)
