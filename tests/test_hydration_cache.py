"""Attachments are cached with their post: what the feed shows follows edits and deletions, URLs stay fresh.

Hydration caches a status record together with its unsigned attachments
(``services.hydrate``) and signs the URLs on every read. A media record can
be edited only until it is attached, and deleting the post drops the cached
record with its attachments; these tests check both through the API, as a
follower's feed shows them.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import redis

from services.media import SIGNED_REUSE_SECONDS
from stack import Stack
from tests.conftest import User, UserFactory
from tests.test_feed import eventually
from tests.test_media import photo_jpeg, upload_ready


def home(http: httpx.Client, user: User) -> list[dict]:
    response = http.get("/api/v1/timelines/home", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def shown(http: httpx.Client, user: User, status_id: str) -> dict | None:
    """The post as the user's home feed shows it (itself or inside a reblog), or None."""
    for post in home(http, user):
        for candidate in (post, post.get("reblog")):
            if candidate and candidate["id"] == status_id:
                return candidate
    return None


def follow(http: httpx.Client, follower: User, author: User) -> None:
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.headers).status_code == 200


def post_photo(http: httpx.Client, author: User, media_id: str) -> dict:
    posted = http.post("/api/v1/statuses", headers=author.headers, data={"status": "look", "media_ids[]": [media_id]})
    assert posted.status_code == 200, posted.text
    return posted.json()


def test_feed_shows_the_description_as_edited_before_posting(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis, stack: Stack
) -> None:
    author, reader = make_user(), make_user()
    follow(http, reader, author)
    media = upload_ready(http, author, photo_jpeg(320, 240, orientation=1), "p.jpg", "image/jpeg", description="old")
    edited = http.put(
        f"/api/v1/media/{media['id']}", headers=author.headers, data={"description": "new", "focus": "0.5,-0.5"}
    )
    assert edited.status_code == 200, edited.text
    status = post_photo(http, author, media["id"])
    assert status["media_attachments"][0]["description"] == "new"

    # The author's profile caches the records it reads; the follower's feed then reads them from the cache.
    profile = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=reader.headers).json()
    assert profile[0]["media_attachments"][0]["description"] == "new"
    eventually(lambda: shown(http, reader, status["id"]) is not None)
    for _ in range(2):  # the second read is served from the cached record
        attachment = shown(http, reader, status["id"])["media_attachments"][0]
        assert attachment["id"] == media["id"]
        assert attachment["description"] == "new" and attachment["meta"]["focus"] == {"x": 0.5, "y": -0.5}
        assert http.get(attachment["preview_url"]).status_code == 200

    # The cache holds the attachment unsigned: the URLs are signed on each read and never go stale.
    cached = orjson.loads(redis_client.get(f"status:{status['id']}"))
    assert [a["description"] for a in cached["attachments"]] == ["new"]
    assert "?" not in orjson.dumps(cached["attachments"]).decode()
    expires = int(parse_qs(urlsplit(attachment["url"]).query)["e"][0])  # a signed URL may be reused a short while
    assert expires >= time.time() + stack.settings.media_url_ttl_seconds - SIGNED_REUSE_SECONDS

    # Attached, the upload can no longer be edited (as in Mastodon), so the feed keeps what was posted.
    refused = http.put(f"/api/v1/media/{media['id']}", headers=author.headers, data={"description": "later"})
    assert refused.status_code == 404
    assert shown(http, reader, status["id"])["media_attachments"][0]["description"] == "new"


def test_deleted_post_takes_its_media_along(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis
) -> None:
    author, sharer, reader = make_user(), make_user(), make_user()
    follow(http, reader, sharer)  # the reader sees the post inside the sharer's reblog; the author, in their own feed
    media = upload_ready(http, author, photo_jpeg(320, 240, orientation=1), "p.jpg", "image/jpeg")
    status = post_photo(http, author, media["id"])
    reblog = http.post(f"/api/v1/statuses/{status['id']}/reblog", headers=sharer.headers)
    assert reblog.status_code == 200, reblog.text

    eventually(lambda: shown(http, reader, status["id"]) is not None)
    attachment = shown(http, author, status["id"])["media_attachments"][0]
    assert shown(http, reader, status["id"])["media_attachments"][0]["id"] == media["id"]
    assert http.get(attachment["url"]).status_code == 200
    assert redis_client.exists(f"status:{status['id']}")  # read through the cache, attachments included

    assert http.delete(f"/api/v1/statuses/{status['id']}", headers=author.headers).status_code == 200
    for user in (author, reader):
        eventually(lambda user=user: shown(http, user, status["id"]) is None)
    assert all(p["id"] != reblog.json()["id"] for p in home(http, reader))
    assert http.get(f"/api/v1/statuses/{status['id']}", headers=reader.headers).status_code == 404
    assert http.get(f"/api/v1/accounts/{author.id}/statuses", headers=reader.headers).json() == []
    for url in (attachment["url"], attachment["preview_url"]):  # the URLs are still within their lifetime
        assert http.get(url).status_code == 404
    assert (
        http.put(f"/api/v1/media/{media['id']}", headers=author.headers, data={"description": "x"}).status_code == 404
    )
