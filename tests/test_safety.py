"""Blocks and mutes: the relationship, the lists, and every read path each rule filters.

Read paths checked here for a block (both directions): the status itself, its
context (replies), the home feed, notifications, favourited_by, reblogged_by,
an account's statuses, streaming. For a mute: the home feed (posts, reblogs,
mentions), notifications (with and without ``notifications``), expiry.
"""

from __future__ import annotations

import httpx
from mastodon import Mastodon

from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow
from tests.test_follow_requests import relationship


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
