"""Stories against the real stack: Pixelfed's API over HTTP, the fan-out into trays, the deadline and its clean-up.

Time is controlled without waiting a day and without anything in the server
that knows about tests: the services take their clock as a constructor
argument (``services.clock``), so these tests build the same services
in-process (``AppContext.create(settings, clock=...)``) against the same real
Redis and graph the stack uses, with a clock set to the moment they want to
look at. A story published over HTTP is then read "at 23:59" and "at 24:00"
of its life. The expiry actor runs on the real clock: a story published
in-process with a clock set a day back has a deadline seconds away, and the
test waits (with a deadline) for the actor to clean up after it.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import imageio_ffmpeg
import neo4j
import redis
from PIL import Image

from api.context import AppContext
from graph.stories import story_keys
from media.store import local_store, original_key
from redis_store.client import redis_from
from redis_store.durability import Durability
from redis_store.slots import slot_of
from redis_store.stories import DUE, StoryStore, author_key, tray_key
from redis_store.timelines import celeb_ready_key
from services.errors import NotFound
from stack import Stack
from tests import waiting
from tests.conftest import User, UserFactory

T = TypeVar("T")
PATIENCE = 90.0  # a guard against hanging, not a performance assertion
DAY_MS = 86_400_000
STORIES = "/api/v1.1/stories"


@dataclass
class ManualClock:
    """A clock the test sets: what the services call "now"."""

    now: int

    def now_ms(self) -> int:
        return self.now


def in_process(stack: Stack, clock: ManualClock, work: Callable[[AppContext], Awaitable[T]]) -> T:
    """Run ``work`` with the stack's services built in this process around ``clock``."""

    async def run() -> T:
        ctx = await AppContext.create(stack.settings, clock=clock)
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    return asyncio.run(run())


def wait_for(read: Callable[[], T], condition: Callable[[T], object], what: str) -> T:
    return waiting.wait_for(read, condition, what, PATIENCE)


def photo(width: int = 64, height: int = 48, fmt: str = "PNG") -> bytes:
    """A small image with a unique pixel, so no two uploads share bytes (and variants)."""
    image = Image.new("RGB", (width, height), (200, 40, 90))
    image.putpixel((0, 0), tuple(uuid.uuid4().bytes[:3]))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def add(http: httpx.Client, user: User, data: bytes | None = None, name: str = "s.png", mime: str = "image/png"):
    return http.post(f"{STORIES}/add", headers=user.headers, files={"file": (name, data or photo(), mime)})


def uploaded(http: httpx.Client, user: User, data: bytes | None = None, name: str = "s.png", mime: str = "image/png"):
    """A story upload, waited for until it is ready to publish; its ``add`` answer."""
    response = add(http, user, data, name, mime)
    assert response.status_code in (200, 202), response.text
    answer = response.json()
    wait_for(
        lambda: http.get(f"/api/v1/media/{answer['media_id']}", headers=user.headers).status_code,
        lambda status: status == 200,
        "the story upload to be processed",
    )
    return answer


def publish(http: httpx.Client, user: User, media_id: str, /, **fields: Any) -> httpx.Response:
    form = {"media_id": media_id, "duration": 10, "can_reply": "true", "can_react": "true", **fields}
    return http.post(f"{STORIES}/publish", headers=user.headers, data=form)


def post_story(http: httpx.Client, user: User) -> dict:
    response = publish(http, user, uploaded(http, user)["media_id"])
    assert response.status_code == 200, response.text
    return response.json()


def carousel(http: httpx.Client, user: User) -> dict:
    response = http.get(f"{STORIES}/carousel", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def story_ids(answer: dict) -> dict[str, list[str]]:
    """Author id -> their story ids, in the carousel's order."""
    return {group["user"]["id"]: [node["id"] for node in group["nodes"]] for group in answer["nodes"]}


def follow(http: httpx.Client, follower: User, followee: User) -> None:
    response = http.post(f"/api/v1/accounts/{followee.id}/follow", headers=follower.headers)
    assert response.status_code == 200, response.text


def seen(http: httpx.Client, user: User, story_id: str) -> httpx.Response:
    return http.post(f"{STORIES}/seen", headers=user.headers, data={"id": story_id})


def ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# -- publishing and reading ----------------------------------------------------------------------------------------


def test_publish_fans_out_and_the_carousel_orders_authors_and_stories(
    http: httpx.Client, make_user: UserFactory
) -> None:
    alice, bob, viewer, stranger = make_user(), make_user(), make_user(), make_user()
    follow(http, viewer, alice)
    follow(http, viewer, bob)
    a1, a2 = post_story(http, alice), post_story(http, alice)
    b1 = post_story(http, bob)
    own = post_story(http, viewer)
    assert ms(a1["expires_at"]) - DAY_MS > time.time() * 1000 - 120_000  # published now, for a day

    found = wait_for(
        lambda: carousel(http, viewer),
        lambda c: story_ids(c).get(alice.id) == [a1["id"], a2["id"]] and story_ids(c).get(bob.id) == [b1["id"]],
        "both authors' stories in the viewer's carousel",
    )
    assert [n["id"] for n in found["self"]["nodes"]] == [own["id"]] and found["self"]["user"]["is_author"]
    # Both unseen: the most recent activity first (bob published last); each author's stories oldest first.
    assert [g["user"]["id"] for g in found["nodes"]] == [bob.id, alice.id]
    node = found["nodes"][0]["nodes"][0]
    assert node["type"] == "photo" and node["duration"] == 10 and node["seen"] is False and node["can_reply"]
    frame = http.get(node["src"])
    assert frame.status_code == 200 and Image.open(io.BytesIO(frame.content)).size == (1080, 1920)

    # Seeing bob's only story makes him a seen author: unseen alice comes first now.
    assert seen(http, viewer, b1["id"]).status_code == 200
    assert seen(http, viewer, a1["id"]).status_code == 200
    found = carousel(http, viewer)
    assert [g["user"]["id"] for g in found["nodes"]] == [alice.id, bob.id]
    assert [g["seen"] for g in found["nodes"]] == [False, True]
    assert [n["seen"] for n in found["nodes"][0]["nodes"]] == [True, False]

    # The stranger follows nobody: no one's stories, and their own carousel shows only themselves.
    assert carousel(http, stranger)["nodes"] == []
    mine = http.get(f"{STORIES}/self-carousel", headers=viewer.headers).json()
    assert [n["id"] for n in mine["self"]["nodes"]] == [own["id"]] and mine["nodes"] == []


def test_seen_counts_each_follower_once_and_only_the_author_lists_viewers(
    http: httpx.Client, make_user: UserFactory
) -> None:
    author, first, second, stranger = make_user(), make_user(), make_user(), make_user()
    follow(http, first, author)
    follow(http, second, author)
    story = post_story(http, author)
    for user in (first, second, first):  # the first viewer twice: counted once, at their first view
        assert seen(http, user, story["id"]).json() == {"code": 200, "msg": None}
    refused = seen(http, stranger, story["id"])
    assert refused.status_code == 403 and "follow" in refused.json()["error"]
    assert seen(http, author, story["id"]).status_code == 200  # the author's own view is not counted

    for path in (f"{STORIES}/viewers", "/api/v1.2/stories/viewers"):
        viewers = http.get(path, params={"sid": story["id"]}, headers=author.headers)
        assert viewers.status_code == 200, viewers.text
        assert [a["id"] for a in viewers.json()] == [second.id, first.id]  # newest first
    for other in (first, stranger):
        assert http.get(f"{STORIES}/viewers", params={"sid": story["id"]}, headers=other.headers).status_code == 404
    group = carousel(http, first)["nodes"][0]
    assert group["seen"] is True and group["nodes"][0]["seen"] is True


def test_the_21st_active_story_is_refused_until_one_ends(
    http: httpx.Client, make_user: UserFactory, stack: Stack
) -> None:
    author = make_user()
    limit = stack.settings.story_max_active
    stories = [post_story(http, author) for _ in range(limit)]
    extra = uploaded(http, author)
    refused = publish(http, author, extra["media_id"])
    assert refused.status_code == 422 and f"limit of {limit} active stories" in refused.json()["error"]
    mine = http.get(f"{STORIES}/self-carousel", headers=author.headers).json()
    assert [n["id"] for n in mine["self"]["nodes"]] == [s["id"] for s in stories]  # nothing changed

    ended = http.post(f"{STORIES}/self-expire/{stories[0]['id']}", headers=author.headers)
    assert ended.status_code == 200, ended.text
    assert publish(http, author, extra["media_id"]).status_code == 200  # the refused upload was left publishable


def test_self_expire_ends_a_story_for_everyone_at_once(http: httpx.Client, make_user: UserFactory) -> None:
    author, follower = make_user(), make_user()
    follow(http, follower, author)
    kept, ended = post_story(http, author), post_story(http, author)
    wait_for(
        lambda: story_ids(carousel(http, follower)).get(author.id),
        lambda ids: ids == [kept["id"], ended["id"]],
        "both stories in the follower's carousel",
    )
    assert http.post(f"{STORIES}/self-expire/{ended['id']}", headers=follower.headers).status_code == 404
    response = http.post(f"{STORIES}/self-expire/{ended['id']}", headers=author.headers)
    assert response.status_code == 200 and response.json() == {"code": 200, "msg": "Successfully deleted"}
    assert story_ids(carousel(http, follower))[author.id] == [kept["id"]]  # at once, before any clean-up
    assert seen(http, follower, ended["id"]).status_code == 404
    assert http.post(f"{STORIES}/self-expire/{ended['id']}", headers=author.headers).status_code == 404
    mine = http.get(f"{STORIES}/self-carousel", headers=author.headers).json()
    assert [n["id"] for n in mine["self"]["nodes"]] == [kept["id"]]


def test_unfollowing_hides_an_authors_stories(http: httpx.Client, make_user: UserFactory) -> None:
    author, follower = make_user(), make_user()
    follow(http, follower, author)
    story = post_story(http, author)
    wait_for(lambda: story_ids(carousel(http, follower)), lambda ids: author.id in ids, "the story to arrive")
    assert http.post(f"/api/v1/accounts/{author.id}/unfollow", headers=follower.headers).status_code == 200
    assert author.id not in story_ids(carousel(http, follower))
    assert seen(http, follower, story["id"]).status_code == 403


def test_a_celebritys_stories_are_pulled_at_read_time(
    http: httpx.Client, make_user: UserFactory, stack: Stack, redis_client: redis.Redis
) -> None:
    star = make_user()
    fans = [make_user() for _ in range(stack.settings.celebrity_threshold)]
    for fan in fans:
        follow(http, fan, star)
    wait_for(lambda: redis_client.exists(celeb_ready_key(int(star.id))), bool, "the star's promotion to pull")
    story = post_story(http, star)
    for fan in fans:
        assert story_ids(carousel(http, fan)).get(star.id) == [story["id"]]  # at once: nothing was pushed
        assert redis_client.zscore(tray_key(int(fan.id)), story["id"]) is None


# -- replies and safety ------------------------------------------------------------------------------------------------


def conversation_texts(http: httpx.Client, user: User) -> list[str]:
    response = http.get("/api/v1/conversations", headers=user.headers)
    assert response.status_code == 200, response.text
    return [c["last_status"]["content"] for c in response.json() if c["last_status"]]


def test_a_reply_is_a_direct_message_to_the_author_when_the_story_takes_replies(
    http: httpx.Client, make_user: UserFactory
) -> None:
    author, follower, stranger = make_user(), make_user(), make_user()
    follow(http, follower, author)
    open_story = post_story(http, author)
    closed = publish(http, author, uploaded(http, author)["media_id"], can_reply="false").json()
    sent = http.post(f"{STORIES}/comment", headers=follower.headers, data={"sid": open_story["id"], "caption": "wow!"})
    assert sent.status_code == 200 and sent.json() == {"code": 200, "msg": "Sent!"}
    texts = wait_for(lambda: conversation_texts(http, author), len, "the author's conversation")
    assert len(texts) == 1 and "wow!" in texts[0]
    assert any("wow!" in text for text in conversation_texts(http, follower))
    refused = http.post(f"{STORIES}/comment", headers=follower.headers, data={"sid": closed["id"], "caption": "hi"})
    assert refused.status_code == 422 and "replies" in refused.json()["error"]
    stranger_reply = http.post(
        f"{STORIES}/comment", headers=stranger.headers, data={"sid": open_story["id"], "caption": "hi"}
    )
    assert stranger_reply.status_code == 403
    empty = http.post(f"{STORIES}/comment", headers=follower.headers, data={"sid": open_story["id"], "caption": ""})
    assert empty.status_code == 422
    assert conversation_texts(http, stranger) == [] and len(conversation_texts(http, author)) == 1


def test_blocked_accounts_never_see_each_others_stories(http: httpx.Client, make_user: UserFactory) -> None:
    author, follower = make_user(), make_user()
    follow(http, follower, author)
    follow(http, author, follower)
    story, theirs = post_story(http, author), post_story(http, follower)
    wait_for(lambda: story_ids(carousel(http, follower)), lambda ids: author.id in ids, "the author's story")
    wait_for(lambda: story_ids(carousel(http, author)), lambda ids: follower.id in ids, "the follower's story")
    assert seen(http, follower, story["id"]).status_code == 200
    assert http.post(f"/api/v1/accounts/{follower.id}/block", headers=author.headers).status_code == 200
    assert author.id not in story_ids(carousel(http, follower))
    assert follower.id not in story_ids(carousel(http, author))
    for viewer, other in ((follower, story), (author, theirs)):
        assert seen(http, viewer, other["id"]).status_code == 403
    viewers = http.get(f"{STORIES}/viewers", params={"sid": story["id"]}, headers=author.headers)
    assert viewers.status_code == 200 and viewers.json() == []  # a viewer blocked since is not listed


def test_a_locked_accounts_stories_reach_only_approved_followers(http: httpx.Client, make_user: UserFactory) -> None:
    owner, fan = make_user(), make_user()
    locked = http.patch("/api/v1/accounts/update_credentials", headers=owner.headers, data={"locked": "true"})
    assert locked.status_code == 200 and locked.json()["locked"] is True
    follow(http, fan, owner)  # a request, not a follow
    story = post_story(http, owner)
    assert owner.id not in story_ids(carousel(http, fan))
    assert seen(http, fan, story["id"]).status_code == 403
    approved = http.post(f"/api/v1/follow_requests/{fan.id}/authorize", headers=owner.headers)
    assert approved.status_code == 200, approved.text
    # The approved follow merges the owner's active stories into the fan's tray.
    assert wait_for(lambda: story_ids(carousel(http, fan)).get(owner.id), bool, "the story") == [story["id"]]
    assert seen(http, fan, story["id"]).status_code == 200


# -- the deadline ------------------------------------------------------------------------------------------------------


def test_a_story_is_visible_at_23_59_and_gone_at_24_00(
    http: httpx.Client, make_user: UserFactory, stack: Stack
) -> None:
    author, follower = make_user(), make_user()
    follow(http, follower, author)
    story = post_story(http, author)
    story_id, deadline = int(story["id"]), ms(story["expires_at"])
    wait_for(lambda: story_ids(carousel(http, follower)), lambda ids: author.id in ids, "the story's fan-out")

    def visible_at(moment: int) -> dict[str, Any]:
        clock = ManualClock(moment)

        async def look(ctx: AppContext) -> dict[str, Any]:
            found = await ctx.stories.carousel(int(follower.id))
            own = await ctx.stories.own(int(author.id))
            outcome: dict[str, Any] = {
                "follower": [s["id"] for g in found.others for s in g.stories],
                "author": [s["id"] for s in own.stories],
            }
            try:
                await ctx.stories.mark_seen(int(follower.id), story_id)
                outcome["viewers"] = [a["id"] for a in await ctx.stories.viewers(int(author.id), story_id, 10)]
            except NotFound:
                outcome["viewers"] = None
            return outcome

        return in_process(stack, clock, look)

    for moment in (deadline - 60_000, deadline - 1):  # 23:59, and the last millisecond
        assert visible_at(moment) == {"follower": [story_id], "author": [story_id], "viewers": [int(follower.id)]}
    for moment in (deadline, deadline + 60_000):  # 24:00 sharp: gone, though nothing has cleaned up yet
        assert visible_at(moment) == {"follower": [], "author": [], "viewers": None}
    # The real clock is hours before the deadline: over HTTP the story is still there.
    assert [n["id"] for n in carousel(http, follower)["nodes"][0]["nodes"]] == [story["id"]]


def test_the_expiry_actor_cleans_up_after_the_deadline(
    http: httpx.Client,
    make_user: UserFactory,
    stack: Stack,
    redis_client: redis.Redis,
    graph_session: neo4j.Session,
) -> None:
    author, follower = make_user(), make_user()
    follow(http, follower, author)
    lasting = post_story(http, author)  # keeps the follower's tray alive, so only the actor can prune it
    wait_for(lambda: story_ids(carousel(http, follower)), lambda ids: author.id in ids, "the first story")
    media_id = uploaded(http, author)["media_id"]
    # Published "a day ago, less 20 seconds" by a clock set back: its deadline is 20 s from now.
    lifetime_ms = stack.settings.story_lifetime_seconds * 1000
    clock = ManualClock(int(time.time() * 1000) - lifetime_ms + 20_000)
    story = in_process(stack, clock, lambda ctx: ctx.stories.publish(int(author.id), int(media_id), 5, True, True))
    tray = tray_key(int(follower.id))
    wait_for(lambda: redis_client.zscore(tray, story["id"]), lambda s: s == story["expires_at"], "its fan-out")
    assert story_ids(carousel(http, follower))[author.id] == [lasting["id"], str(story["id"])]
    assert time.time() * 1000 < story["expires_at"]  # the clean-up below really happens after the deadline

    wait_for(lambda: redis_client.zscore(tray, story["id"]), lambda s: s is None, "the actor to prune the tray")
    assert redis_client.zscore(tray, lasting["id"]) is not None
    # Due next when the lasting story ends (the due index is settled right after the prune, in its own call).
    wait_for(lambda: redis_client.zscore(DUE, tray), lambda due: due == ms(lasting["expires_at"]), "the tray due next")
    assert story_ids(carousel(http, follower))[author.id] == [lasting["id"]]
    record = wait_for(
        lambda: graph_session.run(
            "MATCH (s:Story {id: $id}) MATCH (m:Media {id: s.media_id}) "
            "RETURN s.expired AS expired, m.state AS state, m.sha256 AS sha256",
            id=story["id"],
        ).single(),
        lambda row: row["expired"] is True,
        "the story marked expired",
    )
    # Media is deleted by default (story_keep_media=false): the record says so and the files are gone.
    assert record["state"] == "deleted" and not stack.settings.story_keep_media
    assert not local_store(stack.settings).path(original_key(record["sha256"])).exists()


def test_trays_in_many_slots_are_filled_in_one_call_and_each_is_pruned(stack: Stack, redis_client: redis.Redis) -> None:
    """The store across users: on a cluster their trays lie in many slots (``slots.by_slot`` splits the work)."""
    base = uuid.uuid4().int % 10**12  # users and stories no other test has
    users = [base + i for i in range(40)]
    trays = [tray_key(u) for u in users]
    assert len({slot_of(tray) for tray in trays}) > 10
    now = int(time.time() * 1000)
    brief, lasting = (base, now + 5_000), (base + 1, now + DAY_MS)

    async def write() -> tuple[dict[int, dict], set[int]]:
        client = redis_from(stack.settings)
        try:
            store = StoryStore(client, stack.settings.story_tray_max, Durability.configured(stack.settings))
            for (story_id, deadline), author in ((brief, users[1]), (lasting, users[2])):
                await store.publish({"id": story_id, "account_id": author, "expires_at": deadline}, now)
            await store.deliver([brief, lasting], users, now)
            assert await store.mark_seen(lasting[0], lasting[1], users[0], now)
            assert not await store.mark_seen(lasting[0], lasting[1], users[0], now)  # each viewer once
            return await store.records([brief[0], lasting[0]], users[0])
        finally:
            await client.aclose()

    records, seen = asyncio.run(write())
    assert sorted(records) == [brief[0], lasting[0]] and seen == {lasting[0]}
    for tray in trays:
        assert redis_client.zrange(tray, 0, -1, withscores=True) == [
            (str(brief[0]), brief[1]),
            (str(lasting[0]), lasting[1]),
        ]
        assert redis_client.zscore(DUE, tray) == brief[1]

    wait_for(
        lambda: [redis_client.zrange(t, 0, -1) for t in trays],
        lambda found: found == [[str(lasting[0])]] * 40,
        "the prune",
    )
    # Each tray is due when the lasting story ends; the author's set emptied, so it is no longer due at all.
    due_sets = [*trays, author_key(users[1])]
    wait_for(
        lambda: [redis_client.zscore(DUE, key) for key in due_sets],
        lambda due: due == [lasting[1]] * 40 + [None],
        "the due index",
    )


def test_a_story_whose_delivery_was_cut_short_is_delivered_by_the_actor(
    http: httpx.Client, make_user: UserFactory, graph_session: neo4j.Session
) -> None:
    author, follower = make_user(), make_user()
    follow(http, follower, author)
    media_id = int(uploaded(http, author)["media_id"])
    # What a replica that died right after the graph write leaves: the story and its claimed upload, nothing else.
    media = graph_session.run("MATCH (m:Media {id: $id}) SET m.story_id = $id RETURN m {.*} AS m", id=media_id).single()
    now = int(time.time() * 1000)
    record = {
        "id": media_id, "account_id": int(author.id), "media_id": media_id, "created_at": now - 10_000,
        "expires_at": now - 10_000 + DAY_MS, "duration": 7, "can_reply": True, "can_react": True,
        "expired": False, "delivered": False, **story_keys(media["m"]),
    }  # fmt: skip
    graph_session.run("CREATE (s:Story) SET s = $record", record=record).consume()
    assert str(media_id) not in story_ids(carousel(http, follower)).get(author.id, [])

    found = wait_for(lambda: story_ids(carousel(http, follower)).get(author.id), bool, "the re-delivered story")
    assert found == [str(media_id)]
    delivered = graph_session.run("MATCH (s:Story {id: $id}) RETURN s.delivered AS d", id=media_id).single()
    assert delivered["d"] is True


# -- media ------------------------------------------------------------------------------------------------------------


def short_video(folder: Path) -> bytes:
    target = folder / "story.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i",
         "testsrc=size=360x640:rate=25", "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-metadata", f"comment={uuid.uuid4().hex}", str(target)],
        check=True,
    )  # fmt: skip
    return target.read_bytes()


def test_a_short_video_story_has_its_video_and_a_9_16_poster(
    http: httpx.Client, make_user: UserFactory, tmp_path: Path
) -> None:
    author = make_user()
    added = uploaded(http, author, short_video(tmp_path), "story.mp4", "video/mp4")
    assert added["media_type"] == "video"
    assert publish(http, author, added["media_id"], duration=15).status_code == 200
    (node,) = http.get(f"{STORIES}/self-carousel", headers=author.headers).json()["self"]["nodes"]
    assert node["type"] == "video" and node["duration"] == 15
    video = http.get(node["src"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    poster = http.get(node["preview"])
    assert Image.open(io.BytesIO(poster.content)).size == (1080, 1920)


# -- bad input --------------------------------------------------------------------------------------------------------


def test_bad_input_is_a_clear_4xx_and_changes_nothing(http: httpx.Client, make_user: UserFactory) -> None:
    author, other = make_user(), make_user()
    text = add(http, author, b"just some text, not a photo", "notes.txt", "text/plain")
    assert text.status_code == 415 and "not supported" in text.json()["error"]
    gif = add(http, author, photo(fmt="GIF"), "a.gif", "image/gif")
    assert gif.status_code == 415 and "stories" in gif.json()["error"]
    no_file = http.post(f"{STORIES}/add", headers=author.headers, data={"file": "x"})
    assert no_file.status_code == 422

    media_id = uploaded(http, author)["media_id"]
    for fields, needle in (
        ({"duration": 2}, "duration"),
        ({"duration": 31}, "duration"),
        ({"duration": "ten"}, "duration"),
        ({"can_reply": "maybe"}, "can_reply"),
        ({"media_id": "²"}, "must be an id"),
    ):
        response = publish(http, author, media_id, **fields)
        assert response.status_code == 422 and needle in response.json()["error"], (fields, response.text)
    missing = http.post(f"{STORIES}/publish", headers=author.headers, data={"media_id": media_id, "duration": 10})
    assert missing.status_code == 422 and "can_reply" in missing.json()["error"]
    assert publish(http, other, media_id).status_code == 422  # someone else's upload
    post_media = http.post("/api/v2/media", headers=author.headers, files={"file": ("p.png", photo(), "image/png")})
    not_story = publish(http, author, post_media.json()["id"])
    assert not_story.status_code == 422 and "not uploaded as a story" in not_story.json()["error"]
    attach = http.post("/api/v1/statuses", headers=author.headers, data={"status": "x", "media_ids[]": media_id})
    assert attach.status_code == 422 and "story" in attach.json()["error"]

    assert seen(http, author, "12345").status_code == 404
    assert seen(http, author, "x").status_code == 422
    assert http.post(f"{STORIES}/self-expire/12345", headers=author.headers).status_code == 404
    assert http.get(f"{STORIES}/viewers", headers=author.headers).status_code == 422
    assert http.get(f"{STORIES}/carousel").status_code == 401
    mine = http.get(f"{STORIES}/self-carousel", headers=author.headers).json()
    assert mine["self"]["nodes"] == []  # nothing was published

    assert publish(http, author, media_id).status_code == 200
    again = publish(http, author, media_id)
    assert again.status_code == 422 and "already published" in again.json()["error"]
