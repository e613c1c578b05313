"""Search over HTTP against the real stack: posts by caption words (with visibility), accounts by name prefix.

Posts reach the index through the event stream, so each test first waits
(with a deadline) until a public post it made is found: by then every post it
made earlier was indexed too, and what is still missing is left out on
purpose. Words are made unique per test (``word()``) so tests sharing the
session's index do not see each other's posts.
"""

from __future__ import annotations

import itertools
import time
import uuid
from pathlib import Path

import httpx
import neo4j
import pytest
import ray
import redis
from mastodon import Mastodon

from actors.post_index import StatusQuery
from actors.registry import SEARCH_INDEXER, host_name
from actors.search import index_path
from api import schemas
from api.app import create_app
from services.search import TAGS_RECENT
from stack import Stack
from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow, post

next_tag_id = itertools.count(int(time.time() * 1000) * 1000).__next__


def word() -> str:
    return f"w{uuid.uuid4().hex[:10]}"


def search(http: httpx.Client, user: User | None, **params: object) -> dict:
    response = http.get("/api/v2/search", headers=user.headers if user else {}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def found_ids(http: httpx.Client, user: User | None, q: str, **params: object) -> list[str]:
    return [s["id"] for s in search(http, user, q=q, type="statuses", **params)["statuses"]]


def wait_found(http: httpx.Client, user: User, q: str, status_id: str) -> None:
    eventually(lambda: status_id in found_ids(http, user, q), what=f"post {status_id} to be indexed")


def test_posts_are_found_by_every_word_of_the_caption_newest_first(http: httpx.Client, make_user: UserFactory) -> None:
    author, reader = make_user(), make_user()
    sunset, beach = word(), word()
    first = post(http, author, f"{sunset.upper()} at the {beach}")
    second = post(http, author, f"Another #{sunset} tonight")
    third = post(http, author, f"only the {beach} today")
    wait_found(http, reader, beach, third["id"])
    assert found_ids(http, reader, sunset) == [second["id"], first["id"]]  # case-insensitive, hashtags count
    assert found_ids(http, reader, f"{beach} {sunset}") == [first["id"]]  # every word must occur
    assert found_ids(http, reader, f"  {sunset}!  ") == [second["id"], first["id"]]
    assert found_ids(http, reader, f'"{sunset} OR') == []  # query syntax is just text
    assert found_ids(http, reader, "!!!") == []
    only_author = found_ids(http, reader, beach, account_id=author.id)
    assert only_author == [third["id"], first["id"]]
    assert found_ids(http, reader, beach, account_id=reader.id) == []
    results = search(http, reader, q=sunset, type="statuses")
    assert set(results) == set(schemas.SearchResults.model_fields)
    body = results["statuses"][0]
    assert set(body) == set(schemas.Status.model_fields)
    assert body["account"]["id"] == author.id and body["content"] == f"<p>Another #{sunset} tonight</p>"


def test_diacritics_are_folded(http: httpx.Client, make_user: UserFactory) -> None:
    author = make_user()
    stem = word()
    status = post(http, author, f"{stem}café crème")
    wait_found(http, author, f"{stem}cafe", status["id"])
    assert found_ids(http, author, f"{stem}CAFÉ creme") == [status["id"]]


def test_a_private_post_is_found_only_by_its_author_and_their_followers_and_a_direct_one_never(
    http: httpx.Client, make_user: UserFactory
) -> None:
    author, follower, stranger = make_user(), make_user(), make_user()
    follow(http, follower, author)
    secret = word()
    direct = post(http, author, f"@{follower.username} {secret} between us", visibility="direct")
    private = post(http, author, f"{secret} for my followers", visibility="private")
    unlisted = post(http, author, f"{secret} unlisted", visibility="unlisted")
    public = post(http, author, f"{secret} for everyone")
    wait_found(http, stranger, secret, public["id"])
    assert found_ids(http, stranger, secret) == [public["id"], unlisted["id"]]
    assert found_ids(http, follower, secret) == [public["id"], unlisted["id"], private["id"]]
    assert found_ids(http, author, secret) == [public["id"], unlisted["id"], private["id"]]
    assert direct["id"] not in found_ids(http, follower, secret)  # a direct message is never found
    assert search(http, None, q=secret)["statuses"] == []  # posts only for a signed-in user
    http.post(f"/api/v1/accounts/{author.id}/unfollow", headers=follower.headers)
    assert found_ids(http, follower, secret) == [public["id"], unlisted["id"]]


def test_blocked_and_muted_accounts_are_left_out(http: httpx.Client, make_user: UserFactory) -> None:
    stem = f"b{uuid.uuid4().hex[:8]}"
    viewer, blocked, blocker, muted, other = (make_user(f"{stem}{i}") for i in range(5))
    topic = word()
    posts = {
        user.id: post(http, user, f"{topic} by {user.username}")["id"] for user in (blocked, blocker, muted, other)
    }
    wait_found(http, viewer, topic, posts[other.id])
    for path, actor, target in (("block", viewer, blocked), ("block", blocker, viewer), ("mute", viewer, muted)):
        response = http.post(f"/api/v1/accounts/{target.id}/{path}", headers=actor.headers)
        assert response.status_code == 200, response.text
    assert found_ids(http, viewer, topic) == [posts[other.id]]
    accounts = [a["id"] for a in search(http, viewer, q=stem, type="accounts")["accounts"]]
    assert sorted(accounts) == sorted([viewer.id, muted.id, other.id])  # a mute hides posts, not the account
    assert posts[blocked.id] in found_ids(http, other, topic)  # only for those involved


def test_offset_and_limit_page_through_the_visible_posts(http: httpx.Client, make_user: UserFactory) -> None:
    author, reader = make_user(), make_user()
    topic = word()
    made = []
    for i in range(5):
        made.append(post(http, author, f"{topic} number {i}")["id"])
        if i == 2:  # a private post in the middle must not take a place in the reader's pages
            post(http, author, f"{topic} private", visibility="private")
    wait_found(http, reader, topic, made[-1])
    newest_first = made[::-1]
    assert found_ids(http, reader, topic, limit=2) == newest_first[:2]
    assert found_ids(http, reader, topic, limit=2, offset=2) == newest_first[2:4]
    assert found_ids(http, reader, topic, limit=2, offset=4) == newest_first[4:]
    assert found_ids(http, reader, topic, limit=2, offset=6) == []
    assert found_ids(http, reader, topic, max_id=made[3]) == newest_first[2:]
    assert found_ids(http, reader, topic, min_id=made[1]) == newest_first[:3]
    assert len(found_ids(http, reader, topic, limit=400)) == 5  # a limit over 40 is read as 40


def test_a_deleted_post_is_no_longer_found(http: httpx.Client, make_user: UserFactory, stack: Stack) -> None:
    author = make_user()
    gone = word()
    status = post(http, author, f"{gone} soon gone")
    wait_found(http, author, gone, status["id"])
    assert http.delete(f"/api/v1/statuses/{status['id']}", headers=author.headers).status_code == 200
    assert found_ids(http, author, gone) == []  # hydration leaves it out at once
    eventually(lambda: _indexed(stack, gone) == 0, what="the deletion to reach the index")


def _indexed(stack: Stack, text: str) -> int:
    """How many posts the index itself (not the API) holds for ``text``: asked of its owner directly."""
    settings = stack.settings
    host = ray.get_actor(host_name(SEARCH_INDEXER, settings), namespace=settings.ray_namespace)
    return len(ray.get(host.search_statuses.remote(StatusQuery(text, 0, [], limit=40))))


def test_the_index_is_rebuilt_from_the_graph_when_its_file_is_lost(
    http: httpx.Client, make_user: UserFactory, stack: Stack
) -> None:
    author, reader = make_user(), make_user()
    kept = word()
    before = post(http, author, f"{kept} before the loss")
    wait_found(http, reader, kept, before["id"])
    path = index_path(stack.settings)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    host = host_name(SEARCH_INDEXER, stack.settings)
    ray.kill(ray.get_actor(host, namespace=stack.settings.ray_namespace), no_restart=False)
    during = post(http, author, f"{kept} while it restarts")
    eventually(
        lambda: found_ids(http, reader, kept) == [during["id"], before["id"]], timeout=90, what="the rebuilt index"
    )
    assert path.exists()


def test_accounts_by_prefix_exact_then_followed_then_by_followers(http: httpx.Client, make_user: UserFactory) -> None:
    stem = f"s{uuid.uuid4().hex[:8]}"
    viewer = make_user()
    exact = make_user(stem)
    followed = make_user(f"{stem}_followed")
    popular = make_user(f"{stem}_popular")
    quiet = make_user(f"{stem}_quiet")
    named = make_user()
    response = http.patch(
        "/api/v1/accounts/update_credentials", headers=named.headers, data={"display_name": f"{stem.upper()} Named"}
    )
    assert response.status_code == 200, response.text
    follow(http, viewer, followed)
    for fan in (make_user(), make_user()):
        follow(http, fan, popular)
    follow(http, make_user(), named)

    def names(user: User | None, **params: object) -> list[str]:
        return [a["id"] for a in search(http, user, q=stem, type="accounts", **params)["accounts"]]

    assert names(viewer) == [exact.id, followed.id, popular.id, named.id, quiet.id]
    assert names(viewer, limit=2, offset=1) == [followed.id, popular.id]
    assert names(viewer, following="true") == [followed.id]
    assert names(None) == [exact.id, popular.id, followed.id, named.id, quiet.id]  # signed out: by followers, then id
    assert [a["id"] for a in search(http, viewer, q=f"@{stem}_pop")["accounts"]] == [popular.id]
    assert [a["id"] for a in search(http, viewer, q=f"{stem}_quiet@localhost")["accounts"]] == [quiet.id]
    assert search(http, viewer, q=f"{stem}_quiet@elsewhere.example")["accounts"] == []
    assert search(http, viewer, q=stem, type="hashtags")["accounts"] == []

    v1 = http.get("/api/v1/accounts/search", headers=viewer.headers, params={"q": stem, "limit": 3})
    assert v1.status_code == 200, v1.text
    assert [a["id"] for a in v1.json()] == [exact.id, followed.id, popular.id]
    assert http.get("/api/v1/accounts/search", params={"q": stem}).status_code == 401


def test_hashtags_by_prefix_exact_first_then_most_recently_used(
    http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session, redis_client: redis.Redis
) -> None:
    """Tags written by hand as the discovery indexer keeps them: nodes in the graph, last use in Redis."""
    viewer = make_user()
    stem = word()
    names = [stem, f"{stem}old", f"{stem}new", f"{stem}never"]
    graph_session.execute_write(
        lambda tx: tx.run(
            "UNWIND $rows AS row CREATE (:Tag {id: row[0], name: row[1], followers_count: 0})",
            rows=[[next_tag_id(), name] for name in names],
        ).consume()
    )
    now = int(time.time() * 1000)
    redis_client.zadd(TAGS_RECENT, {stem: now - 50_000, f"{stem}old": now - 90_000, f"{stem}new": now - 10_000})
    graph_session.execute_write(
        lambda tx: tx.run(
            "MATCH (a:Account {id: $me}), (t:Tag {name: $name}) CREATE (a)-[:FOLLOWS_TAG {id: 1, created_at: 0}]->(t)",
            me=int(viewer.id),
            name=f"{stem}new",
        ).consume()
    )

    def tags(user: User | None, q: str, **params: object) -> list[dict]:
        return search(http, user, q=q, type="hashtags", **params)["hashtags"]

    found = tags(viewer, f"#{stem.upper()}")
    assert [t["name"] for t in found] == [stem, f"{stem}new", f"{stem}old", f"{stem}never"]
    assert [t["following"] for t in found] == [False, True, False, False]
    assert set(found[0]) == {"id", "name", "url", "history", "following"}
    assert found[0]["url"].endswith(f"/tags/{stem}")
    assert [t["name"] for t in tags(None, f"{stem}n")] == [f"{stem}new", f"{stem}never"]
    assert [t["name"] for t in tags(viewer, stem, limit=1, offset=1)] == [f"{stem}new"]
    assert tags(viewer, f"{stem} x") == []


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "x", "type": "people"},
        {"q": "x", "limit": "0"},
        {"q": "x", "limit": "many"},
        {"q": "x", "offset": "-1"},
        {"q": "x", "offset": "10001"},
        {"q": "x", "account_id": "abc"},
        {"q": "x", "following": "perhaps"},
        {"q": "x" * 501},
    ],
)
def test_bad_parameters_are_a_422_with_an_error(http: httpx.Client, make_user: UserFactory, params: dict) -> None:
    response = http.get("/api/v2/search", headers=make_user().headers, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("Validation failed")


def test_offset_needs_a_user_and_a_token_needs_the_search_scope(
    http: httpx.Client, make_user: UserFactory, base_url: str
) -> None:
    response = http.get("/api/v2/search", params={"q": "x", "offset": "1"})
    assert response.status_code == 401 and "error" in response.json()
    client_id, client_secret = Mastodon.create_app("scoped", api_base_url=base_url, scopes=["read:accounts"])
    user = make_user()
    token = http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": client_secret,
            "username": user.email,
            "password": user.password,
            "scope": "read:accounts",
        },
    ).json()["access_token"]
    response = http.get("/api/v2/search", headers={"Authorization": f"Bearer {token}"}, params={"q": "x"})
    assert response.status_code == 403 and "error" in response.json()


def test_mastodon_py_search_v2(http: httpx.Client, make_user: UserFactory, base_url: str) -> None:
    author = make_user()
    topic = word()
    status = post(http, author, f"{topic} via Mastodon.py")
    api = Mastodon(access_token=author.token, api_base_url=base_url, version_check_mode="none")
    eventually(lambda: [str(s.id) for s in api.search_v2(topic, result_type="statuses").statuses] == [status["id"]])
    results = api.search_v2(author.username)
    assert [str(a.id) for a in results.accounts] == [author.id]
    assert results.hashtags == []


def test_the_document_declares_search() -> None:
    document = create_app().openapi()
    v2 = document["paths"]["/api/v2/search"]["get"]
    declared = {p["name"] for p in v2["parameters"]}
    assert {"q", "type", "limit", "offset", "following", "account_id", "resolve"} <= declared
    assert {"400", "401", "403", "422", "503"} <= set(v2["responses"])
    assert v2["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchResults")
    v1 = document["paths"]["/api/v1/accounts/search"]["get"]
    assert {"BearerToken": ["read:accounts"]} in v1["security"]
