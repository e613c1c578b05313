"""Trends and explore: the scores on a scripted history with its own clock, then the endpoints on the real stack
(trending tags and posts recomputed by the timer in ``StreamConsumers``, the explore grid's exclusions), and
Mastodon.py's ``trending_tags`` / ``trending_statuses``."""

from __future__ import annotations

import random
import uuid

import httpx
from mastodon import Mastodon

from services import trends
from services.trends import HOUR_MS, PostFacts, status_score, tag_trend
from tests.conftest import User, UserFactory
from tests.test_feed import eventually, follow, post
from tests.test_media import encode, halves, upload_ready

DAY_MS = 24 * HOUR_MS
T0 = 1_800_000_000_000  # a fixed clock: nothing here reads the real time


class TagScript:
    """A tag's history played through ``tag_trend`` as the refresh would: peaks carried from run to run."""

    def __init__(self) -> None:
        self.peak: tuple[float, int] | None = None

    def at(self, now_ms: int, today: int, yesterday: int) -> float:
        trend = tag_trend(today, yesterday, self.peak, now_ms)
        self.peak = trend.peak
        return trend.score


def test_a_tag_trends_on_growth_peaks_and_decays_with_a_four_hour_half_life() -> None:
    script = TagScript()
    assert script.at(T0, today=4, yesterday=0) == 0  # under five accounts: not trending
    assert script.peak is None
    assert script.at(T0 + HOUR_MS, today=5, yesterday=0) == 16  # (5 - 1)² / 1
    assert script.at(T0 + 2 * HOUR_MS, today=11, yesterday=0) == 100  # a new peak
    # The day goes on with as many accounts: the score is no higher, so the peak stays and decays by half every
    # four hours (Mastodon renews a peak only when it is beaten).
    assert script.at(T0 + 6 * HOUR_MS, today=11, yesterday=0) == 50
    assert script.peak == (100, T0 + 2 * HOUR_MS)
    # Next day: yesterday had 11 accounts, today 3: no growth, the old peak decays on.
    assert script.at(T0 + 10 * HOUR_MS, today=3, yesterday=11) == 25
    assert script.at(T0 + 26 * HOUR_MS, today=3, yesterday=11) == 100 * 0.5**6  # 1.5625: still above 1
    assert script.at(T0 + 30 * HOUR_MS, today=3, yesterday=11) == 0  # 0.78 is under the threshold of 1
    assert script.peak == (100, T0 + 2 * HOUR_MS)  # kept until its cooldown...
    assert script.at(T0 + 2 * HOUR_MS + 2 * DAY_MS + 1, today=0, yesterday=0) == 0
    assert script.peak is None  # ...then forgotten
    # Growth that is not above what yesterday saw does not trend, however large.
    assert TagScript().at(T0, today=500, yesterday=500) == 0
    assert TagScript().at(T0, today=40, yesterday=10) == (40 - 10) ** 2 / 10


def test_a_post_trends_on_engagement_squared_with_a_two_hour_half_life() -> None:
    def facts(likes: int, shares: int, age_h: float, **rule: bool) -> PostFacts:
        return PostFacts(1, T0 - int(age_h * HOUR_MS), likes, shares, rule.get("eligible", True))

    assert status_score(facts(3, 1, 0), T0) == 0  # four interactions: under the minimum of five
    assert status_score(facts(4, 1, 0), T0) == 16  # (5 - 1)²
    assert status_score(facts(10, 1, 2), T0) == 50  # 100, two hours old
    assert status_score(facts(10, 1, 16), T0) == 100 * 0.5**8  # 0.39: still above 0.3
    assert status_score(facts(10, 1, 18), T0) == 0  # 0.195: dropped
    assert status_score(facts(50, 0, 0, eligible=False), T0) == 0
    eligible = {"visibility": "public", "in_reply_to_id": None, "reblog_of_id": None, "spoiler_text": ""}
    assert trends.is_trend_eligible(eligible)
    for change in ({"visibility": "unlisted"}, {"in_reply_to_id": 5}, {"spoiler_text": "cw"}, {"sensitive": True}):
        assert not trends.is_trend_eligible(eligible | change)


def test_explore_prefers_engagement_and_recency_and_shuffles_only_a_little() -> None:
    fresh_popular = trends.explore_score(PostFacts(1, T0, 30, 2, True), T0)
    fresh_quiet = trends.explore_score(PostFacts(2, T0, 0, 0, True), T0)
    old_popular = trends.explore_score(PostFacts(3, T0 - 3 * DAY_MS, 30, 2, True), T0)
    assert fresh_popular > fresh_quiet > old_popular > 0
    ranked = list(range(100))
    shuffled = trends.jittered(ranked, random.Random(7))
    assert sorted(shuffled) == ranked and shuffled != ranked
    assert all(abs(shuffled.index(i) - i) <= 50 for i in ranked)  # a rank moves by at most half of itself


# -- against the running stack ------------------------------------------------------------------------------------


def trending_tag_names(http: httpx.Client, **params: object) -> list[str]:
    response = http.get("/api/v1/trends/tags", params=params)
    assert response.status_code == 200, response.text
    return [t["name"] for t in response.json()]


def test_a_tag_used_by_five_accounts_today_trends(http: httpx.Client, make_user: UserFactory, base_url: str) -> None:
    name = f"trend{uuid.uuid4().hex[:8]}"
    users = [make_user() for _ in range(5)]
    for user in users[:4]:
        post(http, user, f"#{name}")
    quiet = f"quiet{uuid.uuid4().hex[:8]}"
    post(http, users[0], f"#{quiet} " * 3)
    eventually(lambda: http.get(f"/api/v1/tags/{name}").json()["history"][0]["accounts"] == "4", what="indexed")
    post(http, users[4], f"the fifth account #{name}")
    eventually(lambda: name in trending_tag_names(http, limit=20), timeout=60, what="the tag to trend")
    entity = next(t for t in http.get("/api/v1/trends/tags", params={"limit": 20}).json() if t["name"] == name)
    assert entity["history"][0]["accounts"] == "5"
    assert quiet not in trending_tag_names(http, limit=20)
    assert name in [t["name"] for t in http.get("/api/v1/trends", params={"limit": 20}).json()]  # the old path
    api = Mastodon(access_token=users[0].token, api_base_url=base_url, version_check_mode="created")
    assert name in [t.name for t in api.trending_tags(limit=20)]


def like(http: httpx.Client, user: User, status_id: str) -> None:
    assert http.post(f"/api/v1/statuses/{status_id}/favourite", headers=user.headers).status_code == 200


def test_a_post_liked_and_shared_by_five_accounts_trends(
    http: httpx.Client, make_user: UserFactory, base_url: str
) -> None:
    author, *fans = (make_user() for _ in range(6))
    popular = post(http, author, "look at this")
    private = post(http, author, "only for followers", visibility="private")
    for fan in fans[:4]:
        follow(http, fan, author)  # so that they may see, and like, the private post
        like(http, fan, popular["id"])
        like(http, fan, private["id"])
    assert http.post(f"/api/v1/statuses/{popular['id']}/reblog", headers=fans[4].headers).status_code == 200

    def trending_ids() -> list[str]:
        return [s["id"] for s in http.get("/api/v1/trends/statuses", params={"limit": 40}).json()]

    eventually(lambda: popular["id"] in trending_ids(), timeout=60, what="the post to trend")
    assert private["id"] not in trending_ids()
    api = Mastodon(access_token=author.token, api_base_url=base_url, version_check_mode="created")
    assert popular["id"] in [s.id for s in api.trending_statuses(limit=40)]


def photo_post(http: httpx.Client, user: User, text: str) -> dict:
    media = upload_ready(http, user, encode(halves(64, 48), "PNG"), "a.png", "image/png")
    return post(http, user, text, **{"media_ids[]": media["id"]})


def test_explore_shows_photo_posts_of_accounts_the_viewer_does_not_follow(
    http: httpx.Client, make_user: UserFactory
) -> None:
    viewer, followed, stranger = make_user(), make_user(), make_user()
    follow(http, viewer, followed)
    mine = photo_post(http, viewer, "my own photo")
    theirs = photo_post(http, followed, "a friend's photo")
    new = photo_post(http, stranger, "a stranger's photo")
    text_only = post(http, stranger, "no photo here")

    def grid(user: User | None) -> list[str]:
        response = http.get("/api/v1/discover/posts", params={"limit": 40}, headers=user.headers if user else {})
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()]

    eventually(lambda: new["id"] in grid(viewer), timeout=60, what="the explore pool to hold the new photo")
    shown = grid(viewer)
    assert mine["id"] not in shown and theirs["id"] not in shown and text_only["id"] not in shown
    assert {mine["id"], theirs["id"], new["id"]} <= set(grid(None))  # anonymous: nobody is left out
