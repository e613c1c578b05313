"""Locked accounts approve their followers: requests, authorize, reject, unlock, and who sees private posts."""

from __future__ import annotations

import httpx
from mastodon import Mastodon

from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow, home_ids, post


def lock(http: httpx.Client, user: User, locked: bool = True) -> dict:
    response = http.patch(
        "/api/v1/accounts/update_credentials", headers=user.headers, data={"locked": str(locked).lower()}
    )
    assert response.status_code == 200, response.text
    assert response.json()["locked"] is locked
    return response.json()


def relationship(http: httpx.Client, user: User, other: User) -> dict:
    response = http.get("/api/v1/accounts/relationships", headers=user.headers, params={"id[]": other.id})
    assert response.status_code == 200, response.text
    return response.json()[0]


def requests_of(http: httpx.Client, user: User) -> list[str]:
    response = http.get("/api/v1/follow_requests", headers=user.headers)
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()]


def notification_types(http: httpx.Client, user: User, account: User) -> list[str]:
    found = http.get("/api/v1/notifications", headers=user.headers, params={"account_id": account.id}).json()
    return [n["type"] for n in found]


def status_code(http: httpx.Client, user: User | None, status_id: str) -> int:
    return http.get(f"/api/v1/statuses/{status_id}", headers=user.headers if user else {}).status_code


def test_following_a_locked_account_is_a_request_until_authorized(http: httpx.Client, make_user: UserFactory) -> None:
    owner, fan, stranger = make_user(), make_user(), make_user()
    lock(http, owner)
    secret = post(http, owner, "followers only", visibility="private")
    answered = follow(http, fan, owner)
    assert answered["requested"] is True and answered["following"] is False
    assert requests_of(http, owner) == [fan.id]
    assert relationship(http, owner, fan)["requested_by"] is True
    me = http.get("/api/v1/accounts/verify_credentials", headers=owner.headers).json()
    assert me["source"]["follow_requests_count"] == 1
    eventually(lambda: "follow_request" in notification_types(http, owner, fan), what="follow_request notification")
    assert status_code(http, fan, secret["id"]) == 404  # not approved yet
    assert http.get(f"/api/v1/accounts/{owner.id}", headers=fan.headers).json()["followers_count"] == 0

    authorized = http.post(f"/api/v1/follow_requests/{fan.id}/authorize", headers=owner.headers)
    assert authorized.status_code == 200, authorized.text
    assert authorized.json()["followed_by"] is True and authorized.json()["requested_by"] is False
    assert relationship(http, fan, owner)["following"] is True
    assert requests_of(http, owner) == []
    assert status_code(http, fan, secret["id"]) == 200
    assert status_code(http, stranger, secret["id"]) == 404
    assert status_code(http, None, secret["id"]) == 404
    statuses = http.get(f"/api/v1/accounts/{owner.id}/statuses", headers=fan.headers).json()
    assert [s["id"] for s in statuses] == [secret["id"]]
    assert http.get(f"/api/v1/accounts/{owner.id}/statuses", headers=stranger.headers).json() == []
    later = post(http, owner, "also private", visibility="private")
    eventually(lambda: later["id"] in home_ids(http, fan), what="approved follower's feed")
    # A second authorize has nothing to authorize.
    assert http.post(f"/api/v1/follow_requests/{fan.id}/authorize", headers=owner.headers).status_code == 404


def test_rejected_and_withdrawn_requests_leave_no_follow(http: httpx.Client, make_user: UserFactory) -> None:
    owner, fan, other = make_user(), make_user(), make_user()
    lock(http, owner)
    follow(http, fan, owner)
    follow(http, other, owner)
    assert set(requests_of(http, owner)) == {fan.id, other.id}
    rejected = http.post(f"/api/v1/follow_requests/{fan.id}/reject", headers=owner.headers)
    assert rejected.status_code == 200 and rejected.json()["followed_by"] is False
    assert relationship(http, fan, owner)["requested"] is False and relationship(http, fan, owner)["following"] is False
    withdrawn = http.post(f"/api/v1/accounts/{owner.id}/unfollow", headers=other.headers).json()
    assert withdrawn["requested"] is False
    assert requests_of(http, owner) == []
    assert http.post(f"/api/v1/follow_requests/{fan.id}/reject", headers=owner.headers).status_code == 404
    assert http.post("/api/v1/follow_requests/1/authorize", headers=owner.headers).status_code == 404


def test_unlocking_accepts_pending_requests(http: httpx.Client, make_user: UserFactory) -> None:
    owner, fans = make_user(), [make_user() for _ in range(3)]
    lock(http, owner)
    for fan in fans:
        assert follow(http, fan, owner)["requested"] is True
    lock(http, owner, locked=False)
    assert requests_of(http, owner) == []
    assert all(relationship(http, fan, owner)["following"] for fan in fans)
    assert http.get(f"/api/v1/accounts/{owner.id}").json()["followers_count"] == 3
    # Unlocked: following is immediate again.
    late = make_user()
    assert follow(http, late, owner)["following"] is True


def test_mastodon_py_follow_requests(base_url: str, make_user: UserFactory) -> None:
    owner, fan = make_user(), make_user()
    owner_api = Mastodon(access_token=owner.token, api_base_url=base_url, version_check_mode="none")
    fan_api = Mastodon(access_token=fan.token, api_base_url=base_url, version_check_mode="none")
    owner_api.account_update_credentials(locked=True)
    assert fan_api.account_follow(int(owner.id)).requested is True
    assert [str(a.id) for a in owner_api.follow_requests()] == [fan.id]
    assert owner_api.follow_request_authorize(int(fan.id)).followed_by is True
    assert fan_api.account_relationships(int(owner.id))[0].following is True
    assert owner_api.follow_requests() == []
