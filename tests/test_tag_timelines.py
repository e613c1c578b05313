"""Tag and public timelines over HTTP against the real stack: which posts, every cursor, ``any[]``, ``all[]``,
``none[]``, ``only_media``, deletion, and Mastodon.py's ``timeline_hashtag`` / ``timeline_public``; then followed
tags in the home feed (pushed, once, gone after unfollowing; pulled for a tag with many followers)."""

from __future__ import annotations

import uuid

import httpx
import neo4j
import pytest
import redis
from mastodon import Mastodon

from api import schemas
from redis_store.timelines import member, tag_pull_key, timeline_key
from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow, home_ids, post
from tests.test_trends import photo_post


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()]


def tag_ids(http: httpx.Client, name: str, **params: object) -> list[str]:
    return ids(http.get(f"/api/v1/timelines/tag/{name}", params=params))


def public_ids(http: httpx.Client, **params: object) -> list[str]:
    return ids(http.get("/api/v1/timelines/public", params=params))


class Posts:
    """A scripted set of posts with three fresh tags: ``t`` on most, ``a`` and ``b`` on some."""

    def __init__(self, http: httpx.Client, author: User) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.t, self.a, self.b = f"t{suffix}", f"a{suffix}", f"b{suffix}"
        t, a, b = self.t, self.a, self.b
        self.p1 = post(http, author, f"one #{t}")["id"]
        self.p2 = post(http, author, f"two #{t} #{a.upper()}")["id"]
        self.p3 = photo_post(http, author, f"three #{t} #{b}")["id"]
        self.p4 = post(http, author, f"four #{t} #{a} #{b}")["id"]
        self.unlisted = post(http, author, f"unlisted #{t}", visibility="unlisted")["id"]
        self.private = post(http, author, f"private #{t}", visibility="private")["id"]
        self.comment = post(http, author, f"a comment #{t}", in_reply_to_id=self.p1)["id"]
        self.p8 = post(http, author, f"eight #{a}")["id"]


@pytest.fixture(scope="module")
def posts(http: httpx.Client, make_user: UserFactory) -> Posts:
    made = Posts(http, make_user())
    eventually(lambda: made.p8 in tag_ids(http, made.a), what="the posts to be indexed")
    return made


def test_a_tag_timeline_holds_the_public_posts_and_comments_with_the_tag(http: httpx.Client, posts: Posts) -> None:
    p = posts
    assert tag_ids(http, p.t) == [p.comment, p.p4, p.p3, p.p2, p.p1]
    assert tag_ids(http, p.t.upper()) == tag_ids(http, p.t)  # case-insensitive
    assert tag_ids(http, p.a) == [p.p8, p.p4, p.p2]
    assert tag_ids(http, f"never{uuid.uuid4().hex[:6]}") == [] and tag_ids(http, "2024") == []
    assert tag_ids(http, p.t, remote="true") == []


def test_a_tag_timeline_pages_with_every_cursor(http: httpx.Client, posts: Posts) -> None:
    p = posts
    first = http.get(f"/api/v1/timelines/tag/{p.t}", params={"limit": 2})
    assert ids(first) == [p.comment, p.p4]
    assert ids(http.get(first.links["next"]["url"])) == [p.p3, p.p2]
    assert ids(http.get(first.links["prev"]["url"])) == []
    assert tag_ids(http, p.t, max_id=p.p4) == [p.p3, p.p2, p.p1]
    assert tag_ids(http, p.t, since_id=p.p2) == [p.comment, p.p4, p.p3]
    assert tag_ids(http, p.t, since_id=p.p1, limit=2) == [p.comment, p.p4]  # the newest after since_id
    assert tag_ids(http, p.t, min_id=p.p1, limit=2) == [p.p3, p.p2]  # the ones just after min_id
    assert tag_ids(http, p.t, min_id=p.p2, max_id=p.comment) == [p.p4, p.p3]


def test_any_all_none_and_only_media(http: httpx.Client, posts: Posts) -> None:
    p = posts
    assert tag_ids(http, p.t, **{"any[]": p.a}) == [p.p8, p.comment, p.p4, p.p3, p.p2, p.p1]
    assert tag_ids(http, p.t, **{"all[]": p.a.upper()}) == [p.p4, p.p2]
    assert tag_ids(http, p.t, **{"all[]": [p.a, p.b]}) == [p.p4]
    assert tag_ids(http, p.t, **{"none[]": p.b}) == [p.comment, p.p2, p.p1]
    assert tag_ids(http, p.t, **{"all[]": p.a, "none[]": p.b}) == [p.p2]
    assert tag_ids(http, p.t, **{"all[]": "2024"}) == []  # no post can carry that
    assert tag_ids(http, p.t, only_media="true") == [p.p3]
    assert tag_ids(http, p.t, **{"all[]": p.a, "limit": 1}) == [p.p4]  # a filtered page reads on when short
    assert tag_ids(http, p.t, **{"all[]": p.a, "limit": 1, "max_id": p.p4}) == [p.p2]


def test_the_public_timeline_leaves_out_comments_and_non_public_posts(http: httpx.Client, posts: Posts) -> None:
    p = posts
    newest = public_ids(http, limit=40)
    mine = [i for i in newest if i in {p.p1, p.p2, p.p3, p.p4, p.p8, p.unlisted, p.private, p.comment}]
    assert mine == [p.p8, p.p4, p.p3, p.p2, p.p1]
    assert public_ids(http, max_id=p.p3, since_id=p.p1) == [p.p2]
    assert public_ids(http, max_id=p.p3, limit=1) == [p.p2]
    assert public_ids(http, min_id=p.p1, max_id=p.p8) == [p.p4, p.p3, p.p2]
    assert public_ids(http, since_id=p.p2, max_id=p.p8, limit=1) == [p.p4]
    assert public_ids(http, local="true", min_id=p.p1, max_id=p.p8) == [p.p4, p.p3, p.p2]
    assert p.p3 in public_ids(http, only_media="true") and p.p4 not in public_ids(http, only_media="true")
    assert public_ids(http, remote="true") == []


def test_a_deleted_post_leaves_the_timelines(http: httpx.Client, make_user: UserFactory) -> None:
    author = make_user()
    name = f"gone{uuid.uuid4().hex[:8]}"
    kept, deleted = post(http, author, f"#{name}")["id"], post(http, author, f"#{name}")["id"]
    eventually(lambda: tag_ids(http, name) == [deleted, kept], what="indexed")
    assert http.delete(f"/api/v1/statuses/{deleted}", headers=author.headers).status_code == 200
    assert tag_ids(http, name) == [kept] and deleted not in public_ids(http, limit=40)


def test_mastodon_py_reads_the_tag_and_public_timelines(base_url: str, posts: Posts, make_user: UserFactory) -> None:
    p = posts
    api = Mastodon(access_token=make_user().token, api_base_url=base_url, version_check_mode="created")
    assert [s.id for s in api.timeline_hashtag(p.t, limit=2)] == [p.comment, p.p4]
    assert [s.id for s in api.timeline_hashtag(p.t, only_media=True)] == [p.p3]
    page = api.timeline_hashtag(p.t, limit=2)
    assert [s.id for s in api.fetch_next(page)] == [p.p3, p.p2]
    assert [s.id for s in api.timeline_public(min_id=p.p1, max_id=p.p8)] == [p.p4, p.p3, p.p2]
    assert [s.id for s in api.timeline_local(min_id=p.p1, max_id=p.p8)] == [p.p4, p.p3, p.p2]
    anonymous = Mastodon(api_base_url=base_url, version_check_mode="created")
    assert [s.id for s in anonymous.timeline_hashtag(p.t, max_id=p.p2)] == [p.p1]


# -- followed tags in the home feed ----------------------------------------------------------------------------------


def delivered(graph_session: neo4j.Session, status_id: str) -> bool:
    """The post's fan-out ran to the end (``FeedManager.distribute`` marks it last)."""
    rows = graph_session.run("MATCH (s:Status {id: $id}) RETURN s.delivered AS d", id=int(status_id)).data()
    return bool(rows and rows[0]["d"])


def test_a_followed_tag_brings_public_posts_home_once_until_unfollowed(
    http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session
) -> None:
    reader, stranger, friend = make_user(), make_user(), make_user()
    name = f"home{uuid.uuid4().hex[:8]}"
    home_ids(http, reader)  # the reader is active
    follow(http, reader, friend)
    assert http.post(f"/api/v1/tags/{name}/follow", headers=reader.headers).status_code == 200
    from_stranger = post(http, stranger, f"a stranger's #{name}")["id"]
    from_friend = post(http, friend, f"a friend's #{name}")["id"]
    unlisted = post(http, stranger, f"unlisted #{name}", visibility="unlisted")["id"]
    eventually(lambda: {from_stranger, from_friend} <= set(home_ids(http, reader)), what="tagged posts at home")
    eventually(lambda: delivered(graph_session, unlisted), what="the unlisted post's fan-out")
    page = home_ids(http, reader)
    assert page.count(from_friend) == 1 and page.count(from_stranger) == 1 and unlisted not in page

    assert http.post(f"/api/v1/tags/{name}/unfollow", headers=reader.headers).status_code == 200
    page = home_ids(http, reader)
    assert from_stranger not in page  # the tag brought it: gone with the tag
    assert from_friend in page  # the author is followed: stays
    later = post(http, stranger, f"after the unfollow #{name}")["id"]
    eventually(lambda: delivered(graph_session, later), what="the later post's fan-out")
    assert later not in home_ids(http, reader)


def test_a_tag_with_many_followers_is_pulled_at_read_time(
    http: httpx.Client, make_user: UserFactory, redis_client: redis.Redis, graph_session: neo4j.Session
) -> None:
    """The tests' celebrity threshold is 3 followers: the third follow switches the tag to pull."""
    readers = [make_user() for _ in range(3)]
    author = make_user()
    name = f"pull{uuid.uuid4().hex[:8]}"
    follow(http, readers[0], author)  # one of them also follows the author
    for reader in readers:
        home_ids(http, reader)
        assert http.post(f"/api/v1/tags/{name}/follow", headers=reader.headers).status_code == 200
    assert redis_client.exists(tag_pull_key(name))
    status = post(http, author, f"for many #{name}")["id"]
    eventually(lambda: delivered(graph_session, status), what="fan-out")
    for reader in readers:
        eventually(lambda r=reader: status in home_ids(http, r), what="the pulled post at home")
        assert home_ids(http, reader).count(status) == 1
    assert member(int(status)) not in redis_client.zrange(timeline_key(int(readers[2].id)), 0, -1)  # not pushed
    assert http.post(f"/api/v1/tags/{name}/unfollow", headers=readers[2].headers).status_code == 200
    assert status not in home_ids(http, readers[2])
    assert status in home_ids(http, readers[0])  # pushed to them as the author's follower, and pulled: once


def test_the_instance_advertises_the_timelines_to_mastodon_py(http: httpx.Client, base_url: str) -> None:
    for path in ("/api/v1/instance", "/api/v1/instance/", "/api/v2/instance/", "/api/v2/instance?lang=de"):
        response = http.get(path)  # httpx does not follow redirects: a 200 is the answer itself
        assert response.status_code == 200, path
    v2 = http.get("/api/v2/instance/", params={"lang": "fr"}).json()
    assert set(v2) == set(schemas.InstanceV2.model_fields)
    assert set(v2["configuration"]) == set(schemas.InstanceV2Configuration.model_fields)
    assert v2["configuration"]["timelines_access"]["hashtag_feeds"] == {"local": "public", "remote": "disabled"}
    api = Mastodon(api_base_url=base_url, version_check_mode="created")
    assert api.verify_minimum_version("4.0.0") and api.mastodon_api_version == 2
    assert api.timeline_is_available("hashtag", local=True) and api.timeline_is_available("public")
    assert not api.timeline_is_available("public", remote=True)


def test_tag_entities_carry_exactly_the_documented_fields(http: httpx.Client, posts: Posts) -> None:
    (status,) = [s for s in http.get(f"/api/v1/timelines/tag/{posts.t}").json() if s["id"] == posts.p2]
    assert set(status) == set(schemas.Status.model_fields)
    assert all(set(t) == set(schemas.StatusTag.model_fields) for t in status["tags"])
    tag = http.get(f"/api/v1/tags/{posts.t}").json()
    assert set(tag) == set(schemas.Tag.model_fields)
    assert set(tag["history"][0]) == set(schemas.TagHistory.model_fields)


def test_blocked_and_muted_authors_are_left_out_for_the_viewer(http: httpx.Client, make_user: UserFactory) -> None:
    viewer, blocked, muted, other = (make_user() for _ in range(4))
    name = f"safe{uuid.uuid4().hex[:8]}"
    made = [post(http, author, f"#{name}")["id"] for author in (blocked, muted, other)]
    eventually(lambda: tag_ids(http, name) == made[::-1], what="indexed")
    assert http.post(f"/api/v1/accounts/{blocked.id}/block", headers=viewer.headers).status_code == 200
    assert http.post(f"/api/v1/accounts/{muted.id}/mute", headers=viewer.headers).status_code == 200
    seen = ids(http.get(f"/api/v1/timelines/tag/{name}", headers=viewer.headers))
    assert seen == [made[2]]
    assert tag_ids(http, name) == made[::-1]  # anonymous: everyone's
    public = ids(http.get("/api/v1/timelines/public", headers=viewer.headers, params={"limit": 40}))
    assert made[2] in public and made[0] not in public and made[1] not in public
