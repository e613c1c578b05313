"""Blocks and mutes: the relationship, the lists, and every read path each rule filters.

Read paths checked here for a block (both directions): the status itself and
actions on it, its context (replies), the home feed (reblogs and mentions
through a third account; follows removed both ways), notifications,
favourited_by, reblogged_by, an account's statuses, the user's favourites and
bookmarks, live updates on the user stream. For a mute: the home feed (posts,
reblogs of them, posts mentioning the account), notifications (with and
without ``notifications``), the inbox clean-up, expiry at read time. Public
and tag timelines, search, suggestions and stories are not on this branch.
"""

from __future__ import annotations

import httpx
import redis
from mastodon import Mastodon

from redis_store.timelines import member, timeline_key
from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow, home_ids, post
from tests.test_follow_requests import relationship
from tests.test_interactions import SseListener, like


def block(http: httpx.Client, user: User, target: User) -> dict:
    response = http.post(f"/api/v1/accounts/{target.id}/block", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def mute(http: httpx.Client, user: User, target: User, **form: object) -> dict:
    response = http.post(f"/api/v1/accounts/{target.id}/mute", headers=user.headers, data=form)
    assert response.status_code == 200, response.text
    return response.json()


def account_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()]


def count(http: httpx.Client, user: User, field: str) -> int:
    return http.get(f"/api/v1/accounts/{user.id}").json()[field]


def test_block_removes_follows_both_ways_and_forbids_following(http: httpx.Client, make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    follow(http, alice, bob)
    follow(http, bob, alice)
    assert count(http, alice, "followers_count") == 1 and count(http, bob, "followers_count") == 1
    blocked = block(http, alice, bob)
    assert blocked["blocking"] is True and blocked["following"] is False and blocked["followed_by"] is False
    assert relationship(http, bob, alice)["blocked_by"] is True
    for user in (alice, bob):
        assert count(http, user, "followers_count") == 0 and count(http, user, "following_count") == 0
    assert account_ids(http.get(f"/api/v1/accounts/{alice.id}/followers")) == []
    assert account_ids(http.get(f"/api/v1/accounts/{bob.id}/followers")) == []
    # Neither may follow the other while the block stands.
    assert http.post(f"/api/v1/accounts/{bob.id}/follow", headers=alice.headers).status_code == 403
    assert http.post(f"/api/v1/accounts/{alice.id}/follow", headers=bob.headers).status_code == 403
    assert account_ids(http.get("/api/v1/blocks", headers=alice.headers)) == [bob.id]
    assert account_ids(http.get("/api/v1/blocks", headers=bob.headers)) == []
    unblocked = http.post(f"/api/v1/accounts/{bob.id}/unblock", headers=alice.headers).json()
    assert unblocked["blocking"] is False
    assert relationship(http, bob, alice)["blocked_by"] is False
    assert follow(http, bob, alice)["following"] is True


def test_blocks_and_mutes_lists_page_with_links(http: httpx.Client, make_user: UserFactory) -> None:
    me, others = make_user(), [make_user() for _ in range(3)]
    for other in others:
        block(http, me, other)
        mute(http, me, other)
    for path in ("/api/v1/blocks", "/api/v1/mutes"):
        first = http.get(path, headers=me.headers, params={"limit": 2})
        assert account_ids(first) == [others[2].id, others[1].id]
        assert 'rel="next"' in first.headers["link"]
        second = http.get(first.links["next"]["url"], headers=me.headers)
        assert account_ids(second) == [others[0].id]
    assert http.post(f"/api/v1/accounts/{me.id}/block", headers=me.headers).status_code == 403
    assert http.post("/api/v1/accounts/1/mute", headers=me.headers).status_code == 404
    assert (
        http.post(f"/api/v1/accounts/{others[0].id}/mute", headers=me.headers, data={"duration": "-1"}).status_code
        == 422
    )


def test_mute_relationship_and_expiry(http: httpx.Client, make_user: UserFactory) -> None:
    me, loud = make_user(), make_user()
    muted = mute(http, me, loud, notifications="false")
    assert muted["muting"] is True and muted["muting_notifications"] is False
    muted = mute(http, me, loud, duration=2)  # muting again replaces the settings
    assert muted["muting"] is True and muted["muting_notifications"] is True
    assert account_ids(http.get("/api/v1/mutes", headers=me.headers)) == [loud.id]
    eventually(lambda: relationship(http, me, loud)["muting"] is False, timeout=10, what="the mute to expire")
    assert account_ids(http.get("/api/v1/mutes", headers=me.headers)) == []
    mute(http, me, loud)
    assert http.post(f"/api/v1/accounts/{loud.id}/unmute", headers=me.headers).json()["muting"] is False


def test_mastodon_py_block_and_mute(base_url: str, make_user: UserFactory) -> None:
    me, other = make_user(), make_user()
    api = Mastodon(access_token=me.token, api_base_url=base_url, version_check_mode="none")
    assert api.account_block(int(other.id)).blocking is True
    assert [str(a.id) for a in api.blocks()] == [other.id]
    assert api.account_unblock(int(other.id)).blocking is False
    assert api.account_mute(int(other.id), duration=2).muting is True
    assert [str(a.id) for a in api.mutes()] == [other.id]
    eventually(lambda: api.mutes() == [], timeout=10, what="the mute to expire")


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


def notifications_from(http: httpx.Client, user: User, actor: User) -> list[str]:
    return [
        n["type"]
        for n in http.get("/api/v1/notifications", headers=user.headers).json()
        if n["account"]["id"] == actor.id
    ]


def in_inbox(redis_client: redis.Redis, user: User, status_id: str) -> bool:
    return redis_client.zscore(timeline_key(int(user.id)), member(int(status_id))) is not None


def test_a_block_hides_each_from_the_other_on_every_read_path(
    http: httpx.Client, make_user: UserFactory, base_url: str
) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    for user in (alice, bob):
        home_ids(http, user)
    follow(http, alice, carol)
    follow(http, carol, alice)
    follow(http, bob, alice)
    by_bob = post(http, bob, "bob's post")
    shared = http.post(f"/api/v1/statuses/{by_bob['id']}/reblog", headers=carol.headers).json()
    mentioning = post(http, carol, f"hey @{bob.username}")
    mine = post(http, alice, "alice's post")
    like(http, bob, mine["id"])
    assert http.post(f"/api/v1/statuses/{mine['id']}/reblog", headers=bob.headers).status_code == 200
    reply = post(http, bob, "bob replies", in_reply_to_id=mine["id"])
    like(http, carol, mine["id"])
    like(http, alice, by_bob["id"])
    assert http.post(f"/api/v1/statuses/{by_bob['id']}/bookmark", headers=alice.headers).status_code == 200
    eventually(lambda: {shared["id"], mentioning["id"]} <= set(home_ids(http, alice)), what="alice's feed")
    eventually(lambda: mine["id"] in home_ids(http, bob), what="bob's feed")
    expected = {"follow", "favourite", "reblog", "mention"}
    eventually(lambda: set(notifications_from(http, alice, bob)) == expected, what="bob's notifications")

    block(http, alice, bob)

    # The statuses themselves: 404 both ways; an account's statuses: empty both ways.
    assert http.get(f"/api/v1/statuses/{by_bob['id']}", headers=alice.headers).status_code == 404
    assert http.get(f"/api/v1/statuses/{mine['id']}", headers=bob.headers).status_code == 404
    assert http.post(f"/api/v1/statuses/{mine['id']}/favourite", headers=bob.headers).status_code == 404
    assert ids(http.get(f"/api/v1/accounts/{bob.id}/statuses", headers=alice.headers)) == []
    assert ids(http.get(f"/api/v1/accounts/{alice.id}/statuses", headers=bob.headers)) == []
    # Alice's favourites and bookmarks: bob's post is left out.
    assert by_bob["id"] not in ids(http.get("/api/v1/favourites", headers=alice.headers))
    assert by_bob["id"] not in ids(http.get("/api/v1/bookmarks", headers=alice.headers))
    # Home: carol's reblog of bob's post and carol's post mentioning bob are gone; alice's from bob's.
    assert not {shared["id"], mentioning["id"]} & set(home_ids(http, alice))
    assert mine["id"] not in home_ids(http, bob)
    # Notifications: nothing from bob.
    assert notifications_from(http, alice, bob) == []
    # Thread: bob's reply is gone for alice, not for carol.
    assert reply["id"] not in ids_of_descendants(http, alice, mine["id"])
    assert reply["id"] in ids_of_descendants(http, carol, mine["id"])
    # Lists of accounts: bob is not among those who liked or shared alice's post, for alice.
    # (likes reach the graph, which these lists read, through the like persister: a moment later)
    likers = f"/api/v1/statuses/{mine['id']}/favourited_by"
    eventually(lambda: carol.id in ids(http.get(likers, headers=alice.headers)), what="carol among the likers")
    eventually(lambda: bob.id in ids(http.get(likers, headers=carol.headers)), what="bob among the likers for carol")
    assert bob.id not in ids(http.get(likers, headers=alice.headers))
    assert bob.id not in ids(http.get(f"/api/v1/statuses/{mine['id']}/reblogged_by", headers=alice.headers))
    assert bob.id in ids(http.get(f"/api/v1/statuses/{mine['id']}/reblogged_by", headers=carol.headers))

    # Streaming: carol's reblog of a new post of bob's is not pushed to alice; carol's next post is.
    stream = SseListener(base_url, alice, "/api/v1/streaming/user")
    try:
        later = post(http, bob, "after the block")
        http.post(f"/api/v1/statuses/{later['id']}/reblog", headers=carol.headers)
        marker = post(http, carol, "marker")
        while True:
            kind, payload = stream.next()
            if kind == "update":
                break
        assert payload["id"] == marker["id"]
    finally:
        stream.close()


def ids_of_descendants(http: httpx.Client, user: User, status_id: str) -> list[str]:
    response = http.get(f"/api/v1/statuses/{status_id}/context", headers=user.headers)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["descendants"]]


def test_a_mute_hides_posts_reblogs_mentions_and_notifications_until_it_expires(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis
) -> None:
    me, loud, friend, other = make_user(), make_user(), make_user(), make_user()
    home_ids(http, me)
    follow(http, me, loud)
    follow(http, me, friend)
    noise = post(http, loud, "noise")
    elsewhere = post(http, other, "from someone I do not follow")
    shared = http.post(f"/api/v1/statuses/{elsewhere['id']}/reblog", headers=friend.headers).json()
    mentioning = post(http, friend, f"cc @{other.username}")
    fine = post(http, friend, "unrelated")
    mine = post(http, me, "mine")
    like(http, loud, mine["id"])
    muted_posts = {noise["id"], shared["id"], mentioning["id"]}
    eventually(lambda: muted_posts | {fine["id"]} <= set(home_ids(http, me)), what="feed")
    eventually(lambda: notifications_from(http, me, loud) == ["favourite"], what="the like's notification")

    mute(http, me, loud, notifications="false")
    mute(http, me, other)  # reblogs of, and posts mentioning, a muted account are hidden too
    assert not muted_posts & set(home_ids(http, me)) and fine["id"] in home_ids(http, me)
    assert notifications_from(http, me, loud) == ["favourite"]  # notifications were not muted
    assert http.get(f"/api/v1/statuses/{noise['id']}", headers=me.headers).status_code == 200  # still reachable
    eventually(lambda: not in_inbox(redis_client, me, noise["id"]), what="the inbox clean-up")

    mute(http, me, loud, duration=3)  # notifications too, for three seconds
    assert notifications_from(http, me, loud) == []
    during = post(http, loud, "posted during the mute")
    eventually(lambda: in_inbox(redis_client, me, during["id"]), what="fan-out during the mute")
    assert during["id"] not in home_ids(http, me)
    # At expiry, the read path lets them through again: no clean-up or event needed.
    eventually(lambda: during["id"] in home_ids(http, me), timeout=15, what="the mute's expiry")
    assert notifications_from(http, me, loud) == ["favourite"]
    assert relationship(http, me, loud)["muting"] is False
