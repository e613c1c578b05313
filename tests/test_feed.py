"""Follows, posts and the hybrid fan-out home feed, over HTTP against the real stack."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.conftest import User


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


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for asynchronous fan-out; fails with the last observation if it never holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_follow_post_and_see_it_in_the_follower_feed(http: httpx.Client, make_user) -> None:  # noqa: ANN001
    alice, bob = make_user(), make_user()
    home(http, bob)  # bob is active
    relationship = follow(http, bob, alice)
    assert relationship["following"] is True and relationship["id"] == alice.id
    status = post(http, alice, "hello from alice")
    assert status["account"]["id"] == alice.id and status["content"] == "<p>hello from alice</p>"
    eventually(lambda: status["id"] in home_ids(http, bob))
    assert status["id"] in home_ids(http, alice)  # own posts appear in your own feed
