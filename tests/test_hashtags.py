"""Hashtags: parsing by Mastodon's rule (a property test against a reference regex), tags on posts, the Tag
entity with its history, following tags, and Mastodon.py's tag methods."""

from __future__ import annotations

import re
import uuid

import httpx
import neo4j
from hypothesis import given, settings
from hypothesis import strategies as st
from mastodon import Mastodon

from services.hashtags import MAX_NAME, MAX_PER_POST, extract_names, extract_tags, is_valid_name, normalize
from tests.conftest import User, UserFactory
from tests.test_feed import eventually, post

# The rule written independently as a regular expression: a ``#`` not right after a word character, ``/`` or
# ``)``; the name is the run of word characters and middle dots after it, and counts if it holds a word character
# that is not a decimal digit.
REFERENCE = re.compile(r"(?<![\w/)])#([\w·]+)")
NOT_A_DIGIT = re.compile(r"[^\W\d]")


def reference_names(text: str) -> list[str]:
    return [m for m in REFERENCE.findall(text) if NOT_A_DIGIT.search(m) and len(m) <= MAX_NAME]


TRICKY = [*"#a Z_1·/)é٣²ßİ.-\n\t(", "##", "http://x/#y", "ﬁ"]
captions = st.lists(st.one_of(st.sampled_from(TRICKY), st.characters()), max_size=60).map("".join)


@settings(max_examples=1000, deadline=None)
@given(captions)
def test_names_are_those_of_the_reference_regex(text: str) -> None:
    assert extract_names(text) == reference_names(text)


@settings(max_examples=500, deadline=None)
@given(captions)
def test_tags_are_the_distinct_normalized_names_in_order(text: str) -> None:
    expected = list(dict.fromkeys(normalize(n) for n in reference_names(text)))[:MAX_PER_POST]
    assert extract_tags(text) == expected
    assert all(is_valid_name(n) for n in extract_names(text))


def test_examples_of_the_rule() -> None:
    assert extract_tags("Golden hour #Sunset at the #beach_day, #SUNSET again") == ["sunset", "beach_day"]
    assert extract_tags("#2024 is digits only, #2024_trip is not, #a·b has a middle dot") == ["2024_trip", "a·b"]
    assert extract_tags("no tag in a#b, http://x.org/#frag or f(x)#y; (#yes) and ##twice") == ["yes", "twice"]
    assert extract_tags("#Café #日本 #İstanbul") == ["café", "日本", "İstanbul".lower()]
    assert extract_tags(" ".join(f"#t{i}" for i in range(40))) == [f"t{i}" for i in range(MAX_PER_POST)]
    assert not is_valid_name("2024") and not is_valid_name("no-dash") and not is_valid_name("")


# -- against the running stack ------------------------------------------------------------------------------------


def fresh_tag(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def tag(http: httpx.Client, name: str, user: User | None = None) -> httpx.Response:
    return http.get(f"/api/v1/tags/{name}", headers=user.headers if user else {})


def test_a_post_carries_its_tags_and_the_graph_holds_them(
    http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session
) -> None:
    alice = make_user()
    name = fresh_tag("Sun")
    status = post(http, alice, f"Golden hour #{name} and #{name.upper()}, #2024, #beach_{name}")
    base = str(http.base_url).rstrip("/")
    assert status["tags"] == [
        {"name": name.lower(), "url": f"{base}/tags/{name.lower()}"},
        {"name": f"beach_{name.lower()}", "url": f"{base}/tags/beach_{name.lower()}"},
    ]
    assert http.get(f"/api/v1/statuses/{status['id']}").json()["tags"] == status["tags"]
    rows = graph_session.run(
        "MATCH (:Status {id: $id})-[:TAGGED]->(t:Tag) RETURN t.name AS name ORDER BY name", id=int(status["id"])
    ).data()
    assert [r["name"] for r in rows] == sorted([name.lower(), f"beach_{name.lower()}"])
    comment = post(http, alice, f"a comment #{name}", in_reply_to_id=status["id"])
    assert [t["name"] for t in comment["tags"]] == [name.lower()]


def test_the_tag_entity_counts_uses_and_accounts_per_day(http: httpx.Client, make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    name = fresh_tag()
    for author, text in ((alice, "one"), (alice, "two"), (bob, "three")):
        post(http, author, f"{text} #{name}")
    post(http, bob, f"unlisted ones count nowhere #{name}", visibility="unlisted")

    def today() -> dict:
        return tag(http, name.upper()).json()["history"][0]

    eventually(lambda: today()["uses"] == "3" and today()["accounts"] == "2", what="the day's history")
    entity = tag(http, name, alice).json()
    assert entity["name"] == name and entity["url"].endswith(f"/tags/{name}") and entity["following"] is False
    assert len(entity["history"]) == 7 and all(d["uses"] == "0" for d in entity["history"][1:])
    days = [int(d["day"]) for d in entity["history"]]
    assert days == [days[0] - i * 86_400 for i in range(7)] and days[0] % 86_400 == 0
    for missing in ("2024", "no-such-char!", fresh_tag("never")):
        response = tag(http, missing)
        assert response.status_code == 404 and response.json() == {"error": "Record not found"}


def test_following_tags_pages_and_unfollowing(http: httpx.Client, make_user: UserFactory) -> None:
    me = make_user()
    names = [fresh_tag(f"f{i}") for i in range(3)]
    for name in names:  # a tag nobody used yet can be followed: it is created
        followed = http.post(f"/api/v1/tags/{name.upper()}/follow", headers=me.headers)
        assert followed.status_code == 200 and followed.json()["following"] is True and followed.json()["name"] == name
    again = http.post(f"/api/v1/tags/{names[0]}/follow", headers=me.headers)
    assert again.status_code == 200 and again.json()["following"] is True
    assert tag(http, names[0], me).json()["following"] is True
    assert tag(http, names[0]).json()["following"] is False  # anonymous

    first = http.get("/api/v1/followed_tags", headers=me.headers, params={"limit": 2})
    assert [t["name"] for t in first.json()] == names[::-1][:2]
    older = first.links["next"]["url"]
    assert [t["name"] for t in http.get(older, headers=me.headers).json()] == [names[0]]
    newer = http.get(first.links["prev"]["url"], headers=me.headers).json()
    assert newer == []

    gone = http.post(f"/api/v1/tags/{names[1]}/unfollow", headers=me.headers)
    assert gone.status_code == 200 and gone.json()["following"] is False
    assert [t["name"] for t in http.get("/api/v1/followed_tags", headers=me.headers).json()] == [names[2], names[0]]
    assert http.post("/api/v1/tags/2024/follow", headers=me.headers).status_code == 404
    assert http.post(f"/api/v1/tags/{names[0]}/follow").status_code == 401


def test_mastodon_py_follows_tags_and_reads_a_tag_timeline(
    http: httpx.Client, make_user: UserFactory, base_url: str
) -> None:
    user = make_user()
    api = Mastodon(access_token=user.token, api_base_url=base_url, version_check_mode="created")
    name = fresh_tag("sunset")
    posted = api.status_post(f"Evening light #{name}")
    assert [t.name for t in posted.tags] == [name]
    eventually(lambda: [s.id for s in api.timeline_hashtag(name)] == [posted.id], what="the tag timeline")
    assert api.tag(name).name == name
    assert api.tag_follow(name).following is True
    assert [t.name for t in api.followed_tags()] == [name]
    assert api.tag_unfollow(name).following is False
    assert api.followed_tags() == []
