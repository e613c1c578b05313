"""Follow suggestions on a hand-built graph: friends of friends, then popular accounts; exclusions; dismissal.

The accounts are real sign-ups (the viewer needs a token, the entities need
real accounts); the follow edges among them are written straight into the
graph, with the counters the services keep, so the graph is exactly the one
drawn in each test. Blocks and mutes go through the API.
"""

from __future__ import annotations

import itertools
import time

import httpx
import neo4j
import redis
from mastodon import Mastodon

from api import schemas
from services.suggestions import POPULAR_KEY
from tests.conftest import User, UserFactory
from tests.test_feed import follow

_edge_ids = itertools.count(int(time.time() * 1000) * 1000)


def follow_edges(session: neo4j.Session, pairs: list[tuple[User, User]]) -> None:
    """``(a)-[:FOLLOWS]->(b)`` for each pair, moving both accounts' counters as a follow does."""
    rows = [[int(a.id), int(b.id), next(_edge_ids)] for a, b in pairs]
    session.execute_write(
        lambda tx: tx.run(
            """
            UNWIND $rows AS row
            MATCH (a:Account {id: row[0]}), (b:Account {id: row[1]})
            CREATE (a)-[:FOLLOWS {id: row[2], created_at: 0}]->(b)
            SET a.following_count = a.following_count + 1, b.followers_count = b.followers_count + 1
            """,
            rows=rows,
        ).consume()
    )


def suggested(http: httpx.Client, user: User, **params: object) -> list[dict]:
    response = http.get("/api/v2/suggestions", headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def suggested_ids(http: httpx.Client, user: User, **params: object) -> list[str]:
    return [s["account"]["id"] for s in suggested(http, user, **params)]


def make_popular(session: neo4j.Session, redis_client: redis.Redis, account: User) -> None:
    """An account far more followed than any other, that posted just now; the shared popular list is dropped
    as if its few minutes were over."""
    session.execute_write(
        lambda tx: tx.run(
            "MATCH (a:Account {id: $id}) SET a.followers_count = 1000000, a.last_status_at = $now",
            id=int(account.id),
            now=int(time.time() * 1000),
        ).consume()
    )
    redis_client.delete(POPULAR_KEY)


def test_friends_of_friends_ranked_then_popular_accounts(
    http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session, redis_client: redis.Redis
) -> None:
    me, a, b, c, x, y, z, w, fan1, fan2, star = (make_user() for _ in range(11))
    follow_edges(graph_session, [(me, a), (me, b), (me, c)])
    follow_edges(graph_session, [(a, x), (b, x), (c, x), (a, y), (b, y), (b, z), (c, w)])
    follow_edges(graph_session, [(fan1, w), (fan2, w)])  # w: as many mutual followees as z, more followers
    follow_edges(graph_session, [(a, me), (a, b)])  # never yourself, never whom you follow
    make_popular(graph_session, redis_client, star)

    found = suggested(http, me)
    ids = [s["account"]["id"] for s in found]
    assert ids[:5] == [x.id, y.id, z.id, w.id, star.id]
    assert me.id not in ids and not {a.id, b.id, c.id} & set(ids)
    assert found[0]["source"] == "past_interactions" and found[0]["sources"] == ["friends_of_friends"]
    assert found[4]["source"] == "global" and found[4]["sources"] == ["most_followed"]
    assert found[0]["account"]["username"] == x.username
    assert set(found[0]) == set(schemas.Suggestion.model_fields)
    assert set(found[0]["account"]) == set(schemas.Account.model_fields)
    assert all(s["sources"] == ["most_followed"] for s in found[4:])
    assert suggested_ids(http, me, limit=2) == [x.id, y.id]

    v1 = http.get("/api/v1/suggestions", headers=me.headers, params={"limit": 5})
    assert v1.status_code == 200 and [account["id"] for account in v1.json()] == ids[:5]


def test_blocked_muted_and_dismissed_accounts_are_never_suggested(
    http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session, base_url: str
) -> None:
    me, a, x, y, z, w, q, r = (make_user() for _ in range(8))
    follow_edges(graph_session, [(me, a), (a, x), (a, y), (a, z), (a, w)])
    assert set(suggested_ids(http, me)) >= {x.id, y.id, z.id, w.id}

    # Blocks either way and mutes count at once, even with the suggestions cached.
    for path, actor, target in (("block", me, x), ("block", y, me), ("mute", me, z)):
        assert http.post(f"/api/v1/accounts/{target.id}/{path}", headers=actor.headers).status_code == 200
    assert not {x.id, y.id, z.id} & set(suggested_ids(http, me))
    assert w.id in suggested_ids(http, me)

    api = Mastodon(access_token=me.token, api_base_url=base_url, version_check_mode="none")
    assert str(api.suggestions_v2()[0].account.id) == w.id
    api.suggestion_delete(w.id)
    assert w.id not in suggested_ids(http, me)
    assert http.delete(f"/api/v1/suggestions/{w.id}", headers=me.headers).status_code == 200  # again: no change
    assert http.delete("/api/v1/suggestions/123", headers=me.headers).status_code == 404

    # Following someone recomputes the list (what their follows bring in), and a dismissal stays for good.
    follow_edges(graph_session, [(q, w), (q, x), (q, r)])
    assert r.id not in suggested_ids(http, me)
    follow(http, me, q)
    ids = suggested_ids(http, me)
    assert r.id in ids
    assert w.id not in ids and x.id not in ids and q.id not in ids


def test_suggestions_need_a_user_and_bad_limits_are_422(http: httpx.Client, make_user: UserFactory) -> None:
    assert http.get("/api/v2/suggestions").status_code == 401
    assert http.delete("/api/v1/suggestions/1").status_code == 401
    me = make_user()
    for limit in ("0", "lots"):
        response = http.get("/api/v2/suggestions", headers=me.headers, params={"limit": limit})
        assert response.status_code == 422 and response.json()["error"].startswith("Validation failed")
    assert isinstance(suggested(http, me, limit=500), list)  # over 80 is read as 80
