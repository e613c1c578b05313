"""The seed's metrics on Ray's Prometheus endpoint, after real traffic; ``raygram status``; the Grafana dashboard.

The figures are read the way an operator's Prometheus reads them: over HTTP
from the metrics agent's endpoint of the running stack (``metrics.py``), summed
over Ray's per-process series (``ops_status.scrape``). Counters that the
serving replicas move while they answer (posts, likes, media, feed reads) must
move by exactly what the test did; the ones background consumers move
(notifications, fan-out) by at least that, since earlier tests' events may
still be arriving.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import redis

import metrics
from ops_status import Samples, scrape
from redis_store.events import STREAM, dead_letter_key
from stack import ENDPOINTS_FILE, Stack
from tests.conftest import User, UserFactory
from tests.test_feed import eventually
from tests.test_media import photo_jpeg, upload_ready

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana-raygram.json"


@pytest.fixture(scope="module")
def metrics_urls(stack: Stack) -> list[str]:
    urls = json.loads((stack.state_dir / ENDPOINTS_FILE).read_text())["metrics_urls"]
    assert urls and all(url.startswith("http://127.0.0.1:") for url in urls), urls
    return urls


class Watch:
    """Figures before the test's traffic; ``moved`` waits until a counter moved by (at least) the expected amount."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.before = scrape(urls)
        self.after = self.before

    def delta(self, name: str, **labels: str) -> float:
        return self.after.total(name, **labels) - self.before.total(name, **labels)

    def wait(self, expected: dict[tuple[str, tuple[tuple[str, str], ...]], float], exact: bool) -> None:
        def moved() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return {key: self.delta(key[0], **dict(key[1])) for key in expected}

        def check() -> bool:
            self.after = scrape(self.urls)
            return all(moved()[k] >= v for k, v in expected.items())

        try:
            eventually(check, timeout=60, what="the metrics to move")
        except AssertionError:
            raise AssertionError(f"expected moves {expected}, saw {moved()}") from None
        if exact:
            assert moved() == expected


def key(metric: metrics.Metric, suffix: str = "", **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return f"{metric.exported}{suffix}", tuple(sorted(labels.items()))


def post(http: httpx.Client, user: User, text: str, **fields) -> dict:
    response = http.post("/api/v1/statuses", headers=user.headers, data={"status": text, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def traffic(http: httpx.Client, make_user: UserFactory, likes: int, comments: int) -> tuple[User, User]:
    """An author posts ``likes`` posts (the first with a photo); a fan likes each, comments ``comments`` times
    on the first and reads their home feed once."""
    author, fan = make_user(), make_user()
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=fan.headers).status_code == 200
    media = upload_ready(http, author, photo_jpeg(640, 480), "a.jpg", "image/jpeg")
    posts = [post(http, author, "with a photo", **{"media_ids[]": media["id"]})]
    posts += [post(http, author, f"post {i}") for i in range(1, likes)]
    for p in posts:
        assert http.post(f"/api/v1/statuses/{p['id']}/favourite", headers=fan.headers).status_code == 200
    for i in range(comments):
        post(http, fan, f"nice {i}", in_reply_to_id=posts[0]["id"])
    assert http.get("/api/v1/timelines/home", headers=fan.headers).status_code == 200
    return author, fan


def test_counters_move_by_what_the_traffic_did(
    http: httpx.Client, make_user: UserFactory, metrics_urls: list[str]
) -> None:
    likes, comments = 4, 3
    watch = Watch(metrics_urls)
    traffic(http, make_user, likes, comments)
    m = metrics
    watch.wait(
        {
            key(m.LIKES): likes,
            key(m.POSTS, kind="post", outcome="created"): likes,
            key(m.POSTS, kind="comment", outcome="created"): comments,
            key(m.MEDIA_UPLOADS, kind="image", outcome="accepted"): 1,
            key(m.FEED_LOAD, "_count"): 1,
            key(m.CACHE_LOOKUPS, cache="timeline"): 1,
        },
        exact=True,
    )
    assert watch.delta(m.POSTS.exported, outcome="failed") == 0
    assert watch.delta(m.MEDIA_UPLOADS.exported, outcome="failed") == 0
    # The home read went one way, and a timeline lookup was a hit exactly when it needed no rebuild.
    paths = {p: watch.delta(f"{m.FEED_LOAD.exported}_count", path=p) for p in ("inbox", "rebuild", "degraded")}
    assert sorted(paths.values()) == [0, 0, 1], paths
    hit = watch.delta(m.CACHE_LOOKUPS.exported, cache="timeline", result="hit")
    assert hit == paths["inbox"]
    # The background consumers: a notification per like and per comment, a fan-out per post and comment.
    watch.wait(
        {
            key(m.NOTIFICATIONS, type="favourite"): likes,
            key(m.NOTIFICATIONS, type="mention"): comments,
            key(m.NOTIFICATION_LAG, "_count"): likes + comments,
            key(m.FANOUT_LAG, "_count"): likes + comments,
            key(m.MEDIA_PROCESSED, kind="image", state="ready"): 1,
        },
        exact=False,
    )
    # Hydration read the posts it showed through the status cache.
    status_lookups = watch.delta(m.CACHE_LOOKUPS.exported, cache="status")
    assert status_lookups >= likes + comments


def test_sampled_gauges_match_redis(metrics_urls: list[str], redis_client: redis.Redis) -> None:
    """Redis memory and each group's dead letters, as the sampler on the consumers' host last saw them."""
    groups = [g["name"] for g in redis_client.xinfo_groups(STREAM)]
    assert {"fanout", "likes", "notify"} <= set(groups)

    def sampled() -> Samples | None:
        samples = scrape(metrics_urls)
        dead = metrics.DEAD_LETTERS.exported
        if samples.gauge(metrics.REDIS_MEMORY.exported) is None or any(
            samples.gauge(dead, group=g) != redis_client.xlen(dead_letter_key(g)) for g in groups
        ):
            return None
        return samples

    eventually(lambda: sampled() is not None, timeout=60, what="the sampled gauges")
    memory = scrape(metrics_urls).gauge(metrics.REDIS_MEMORY.exported)
    if isinstance(redis_client, redis.RedisCluster):  # the sum over the primaries, not one node's share
        nodes = redis_client.info("memory", target_nodes=redis.RedisCluster.PRIMARIES)
        used = sum(int(info["used_memory"]) for info in nodes.values())
    else:
        used = int(redis_client.info("memory")["used_memory"])
    assert memory is not None and 0.5 * used < memory < 2 * used


def test_status_shows_the_seed_figures_after_a_load(
    http: httpx.Client, make_user: UserFactory, stack: Stack, metrics_urls: list[str]
) -> None:
    traffic(http, make_user, likes=2, comments=1)
    done = threading.Event()
    target = post(http, make_user(), "liked over and over")

    def keep_liking() -> None:
        """Likes during the status command's window, so that its rate is not zero; a fan whose likes reach
        the rate limit (FAVOURITE_RATE_LIMIT in the test settings) hands over to a new one."""
        with httpx.Client(base_url=stack.settings.base_url, timeout=30) as client:
            fan = make_user()
            while not done.is_set():
                liked = client.post(f"/api/v1/statuses/{target['id']}/favourite", headers=fan.headers)
                client.post(f"/api/v1/statuses/{target['id']}/unfavourite", headers=fan.headers)
                if liked.status_code == 429:
                    fan = make_user()

    liker = threading.Thread(target=keep_liking)
    liker.start()
    try:
        result = subprocess.run(
            [Path(sys.executable).parent / "raygram", "status", "--state-dir", str(stack.state_dir), "--window", "3"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        done.set()
        liker.join()
    out = result.stdout
    assert result.returncode == 0, result.stderr
    for figure in (
        "feed load latency",
        "post upload success",
        "likes / comments per second",
        "cache hit ratio",
        "notification delivery",
    ):
        assert figure in out, out
    assert re.search(r"feed load latency\s*│\s*p50 \d+ ms, p99 \d+ ms", out), out
    assert re.search(r"post upload success\s*│\s*posts \d+\.\d %, media \d+\.\d %", out), out
    assert re.search(r"likes / comments per second\s*│\s*(\d+\.\d)/s", out), out
    assert float(re.search(r"likes / comments per second\s*│\s*(\d+\.\d)/s", out).group(1)) > 0, out
    assert re.search(r"cache hit ratio\s*│\s*timeline \d+\.\d %, posts \d+\.\d %", out), out
    assert re.search(r"notification delivery\s*│\s*\d+\.\d/s", out), out
    assert "API health" in out and "ok" in out
    if stack.settings.redis_cluster_urls:  # the sum, then each primary
        assert re.search(r"Redis Cluster\s*│\s*\d+\.\d MiB used\s*│\s*summed over 3 primaries", out), out
        assert len(re.findall(r"primary 127\.0\.0\.1:\d+\s*│\s*\S+ used", out)) == 3, out
    else:
        assert re.search(r"Redis\s*│\s*\S+ used\s*│\s*\d+ clients, AOF on", out), out


def test_status_without_a_stack(tmp_path: Path) -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "raygram", "status", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "not running" in result.stdout


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def test_grafana_dashboard_reads_only_metrics_the_code_defines() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in board["templating"]["list"])
    exported = set()
    for metric in metrics.METRICS:
        suffixes = ("_bucket", "_count", "_sum") if metric.kind == "histogram" else ("",)
        exported |= {metric.exported + suffix for suffix in suffixes}
    expressions = dashboard_expressions()
    assert expressions
    named = set()
    for expr in expressions:
        names = set(re.findall(r"\bray_raygram_\w+", expr))
        assert names, f"a panel reads no raygram metric: {expr}"
        assert names <= exported, f"{expr} names metrics the code does not define: {names - exported}"
        named |= names
    seed = (metrics.FEED_LOAD, metrics.POSTS, metrics.MEDIA_UPLOADS, metrics.LIKES, metrics.CACHE_LOOKUPS)
    seed += (metrics.NOTIFICATIONS, metrics.FANOUT_LAG, metrics.REDIS_MEMORY, metrics.DEAD_LETTERS)
    for metric in seed:
        assert any(name.startswith(metric.exported) for name in named), f"no panel shows {metric.name}"
