"""Bookmarks: bookmark and un-bookmark, the list with its Link header, ``bookmarked`` wherever a status shows."""

from __future__ import annotations

import httpx
from mastodon import Mastodon

from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow, home, post


def bookmark(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> dict:
    response = http.post(f"/api/v1/statuses/{status_id}/{'unbookmark' if undo else 'bookmark'}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def bookmark_ids(http: httpx.Client, user: User, **params: object) -> list[str]:
    response = http.get("/api/v1/bookmarks", headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()]


def test_bookmarks_list_state_and_paging(http: httpx.Client, make_user: UserFactory) -> None:
    author, reader, other = make_user(), make_user(), make_user()
    home(http, reader)
    follow(http, reader, author)
    first, second, third = (post(http, author, f"post {i}") for i in range(3))
    assert bookmark(http, reader, second["id"])["bookmarked"] is True
    assert bookmark(http, reader, second["id"])["bookmarked"] is True  # twice is once
    bookmark(http, reader, first["id"])  # the most recent bookmark comes first, whatever the post's age
    assert bookmark_ids(http, reader) == [first["id"], second["id"]]
    assert bookmark_ids(http, other) == []

    # ``bookmarked`` is the viewer's own, on single statuses and on feed pages.
    assert http.get(f"/api/v1/statuses/{second['id']}", headers=reader.headers).json()["bookmarked"] is True
    assert http.get(f"/api/v1/statuses/{second['id']}", headers=other.headers).json()["bookmarked"] is False
    eventually(lambda: {s["id"] for s in home(http, reader)} >= {first["id"], second["id"], third["id"]})
    flags = {s["id"]: s["bookmarked"] for s in home(http, reader)}
    assert flags[first["id"]] and flags[second["id"]] and not flags[third["id"]]

    # Paging: the Link header's next page continues by bookmark.
    page = http.get("/api/v1/bookmarks", headers=reader.headers, params={"limit": 1})
    assert [s["id"] for s in page.json()] == [first["id"]]
    rest = http.get(page.links["next"]["url"], headers=reader.headers)
    assert [s["id"] for s in rest.json()] == [second["id"]]

    # A reblog's bookmark is its original's.
    shared = http.post(f"/api/v1/statuses/{third['id']}/reblog", headers=other.headers).json()
    assert bookmark(http, reader, shared["id"])["id"] == third["id"]
    assert bookmark_ids(http, reader)[0] == third["id"]

    assert bookmark(http, reader, second["id"], undo=True)["bookmarked"] is False
    assert second["id"] not in bookmark_ids(http, reader)
    assert http.get(f"/api/v1/statuses/{second['id']}", headers=reader.headers).json()["bookmarked"] is False

    # Deleted posts leave the list; a post one may not see cannot be bookmarked.
    http.delete(f"/api/v1/statuses/{first['id']}", headers=author.headers)
    assert first["id"] not in bookmark_ids(http, reader)
    private = post(http, other, "followers only", visibility="private")
    assert http.post(f"/api/v1/statuses/{private['id']}/bookmark", headers=reader.headers).status_code == 404
    assert http.post("/api/v1/statuses/1/bookmark", headers=reader.headers).status_code == 404


def test_mastodon_py_bookmarks(base_url: str, make_user: UserFactory) -> None:
    user = make_user()
    api = Mastodon(access_token=user.token, api_base_url=base_url, version_check_mode="none")
    status = api.status_post("keep this")
    assert api.status_bookmark(status.id).bookmarked is True
    assert [s.id for s in api.bookmarks()] == [status.id]
    assert api.status_unbookmark(status.id).bookmarked is False
    assert api.bookmarks() == []
