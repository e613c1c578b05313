"""Stories (Pixelfed's API): photos and short videos that their author's followers see for exactly 24 hours.

A story is an upload made through ``add`` (the media pipeline, with a 9:16
frame) and then published: the graph records it with its deadline
(``graph.stories``), Redis holds it while it is active (``redis_store.stories``),
and a ``story.created`` event has the fan-out workers put it in each
follower's story tray (celebrities' stories are pulled at read time, like
their posts). The rules:

* The deadline is fixed at publishing: ``now + story_lifetime_seconds`` from
  the service's clock (``services.clock``). Every read compares it with the
  clock's ``now``: a story is shown while ``now < expires_at`` and never after,
  whether or not the expiry actor has cleaned up yet.
* At most ``story_max_active`` active stories per author (counted in the
  graph under the author's story lock): the next one is a 422.
* Who sees a story is a feed rule (``FeedManager.story_viewers_among``): its
  author and the accounts that follow the author, checked on every read
  with one lookup per carousel, so an unfollow, a block or a follow request
  not approved yet hides it at once.
* Seen: only a follower can mark a story seen; each viewer counts once. The
  author alone lists the viewers, newest first.
* Ending a story early (``self-expire``) moves its deadline to now.
* Blocked accounts never see each other's stories (``services.relations``),
  nor appear among its viewers; a reply (``comment``) is a direct message to
  the author, when the story takes replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile

from config import Settings
from graph.media import STORY_PURPOSE
from graph.stories import MediaNotPublishable, StoryGraph, TooManyStories
from redis_store.events import EventStream
from redis_store.locks import Locks
from redis_store.stories import StoryStore
from redis_store.timelines import celebs_key
from services.abuse import AbuseGuard
from services.clock import SYSTEM_CLOCK, Clock
from services.errors import Forbidden, NotFound, Unprocessable
from services.feed import FeedManager
from services.hydrate import HydratedStatus, Hydrator
from services.media import MediaService
from services.relations import RelationService
from services.statuses import StatusService
from services.story_delivery import deliver_story

Row = dict[str, Any]


@dataclass
class StoryGroup:
    """One author's active stories as a viewer sees them, oldest first."""

    author: Row
    stories: list[Row]
    seen: set[int]

    @property
    def all_seen(self) -> bool:
        return all(s["id"] in self.seen for s in self.stories)

    @property
    def newest(self) -> int:
        return self.stories[-1]["id"]


@dataclass
class Carousel:
    own: StoryGroup
    others: list[StoryGroup]  # unseen authors first, then seen ones; newest activity first within each


class StoryService:
    def __init__(
        self,
        settings: Settings,
        store: StoryStore,
        graph: StoryGraph,
        feed: FeedManager,
        hydrator: Hydrator,
        media: MediaService,
        events: EventStream,
        locks: Locks,
        abuse: AbuseGuard,
        relations: RelationService,
        statuses: StatusService,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.store = store
        self.graph = graph
        self.feed = feed
        self.hydrator = hydrator
        self.media = media
        self.events = events
        self.locks = locks
        self.abuse = abuse
        self.relations = relations
        self.statuses = statuses
        self.clock = clock

    # -- writing ---------------------------------------------------------------

    async def add(self, account_id: int, upload: UploadFile) -> tuple[Row, bool]:
        """Upload a story's photo or video; (its MediaAttachment, whether it is ready to publish)."""
        return await self.media.upload(account_id, upload, None, None, purpose=STORY_PURPOSE)

    async def publish(self, account_id: int, media_id: int, duration: int, can_reply: bool, can_react: bool) -> Row:
        """Publish an uploaded story; its deadline is ``story_lifetime_seconds`` from now."""
        s = self.settings
        if not s.story_min_duration <= duration <= s.story_max_duration:
            raise Unprocessable(
                f"Validation failed: duration must be between {s.story_min_duration} and {s.story_max_duration} seconds"
            )
        await self.abuse.rate_limit("post", account_id)
        now = self.clock.now_ms()
        record = {
            "id": media_id,
            "account_id": account_id,
            "media_id": media_id,
            "created_at": now,
            "expires_at": now + s.story_lifetime_seconds * 1000,
            "duration": duration,
            "can_reply": can_reply,
            "can_react": can_react,
        }
        try:
            async with self.locks.hold(f"stories:{account_id}"):
                story = await self.graph.publish(record, now, s.story_max_active)
        except TooManyStories:
            raise Unprocessable(
                f"You have reached the limit of {s.story_max_active} active stories: "
                "wait until one expires, or end one (POST /api/v1.1/stories/self-expire/:id)"
            ) from None
        except MediaNotPublishable as exc:
            raise Unprocessable(str(exc)) from None
        await deliver_story(story, now, self.store, self.events, self.graph)
        return story

    async def end(self, account_id: int, story_id: int) -> None:
        """Self-expire: the author's active story ends now (404 if there is none)."""
        story = await self.graph.end_now(story_id, account_id, self.clock.now_ms())
        if story is None:
            raise NotFound("Record not found")
        await self.store.end(story_id, account_id)
        await self.events.publish("story.ended", story_id=story_id, account_id=account_id)

    # -- reading ---------------------------------------------------------------

    async def _active(self, story_id: int) -> Row:
        """The story's record while it is active at the clock's now; 404 otherwise."""
        story = await self.store.record(story_id)
        if story is None or story["expires_at"] <= self.clock.now_ms():
            raise NotFound("Record not found")
        return story

    def _group(self, author: Row, records: dict[int, Row], ids: list[int], seen: set[int], now: int) -> StoryGroup:
        stories = sorted(
            (records[i] for i in set(ids) if i in records and records[i]["expires_at"] > now), key=lambda s: s["id"]
        )
        return StoryGroup(author, stories, seen)

    async def carousel(self, viewer_id: int) -> Carousel:
        """The viewer's own stories, then those of the accounts they follow that have active stories."""
        now = self.clock.now_ms()
        read = await self.store.read(viewer_id, celebs_key(viewer_id), now)
        candidates = [*read.tray, *read.own, *(i for ids in read.celebrities.values() for i in ids)]
        records, seen = await self.store.records(list(dict.fromkeys(candidates)), viewer_id)
        by_author: dict[int, list[int]] = {}
        for story_id in candidates:
            story = records.get(story_id)
            if story is not None and story["account_id"] != viewer_id:
                by_author.setdefault(story["account_id"], []).append(story_id)
        following = await self.feed.story_viewers_among(viewer_id, sorted(by_author))
        authors = await self.hydrator.account_rows([viewer_id, *following])
        own = self._group(authors.get(viewer_id) or {"id": viewer_id}, records, read.own, seen, now)
        others = [
            group
            for author_id in following
            if author_id in authors
            and (group := self._group(authors[author_id], records, by_author[author_id], seen, now)).stories
        ]
        others.sort(key=lambda g: (g.all_seen, -g.newest))
        return Carousel(own, others)

    async def own(self, viewer_id: int) -> StoryGroup:
        """The viewer's own active stories (``self-carousel``)."""
        now = self.clock.now_ms()
        ids = await self.store.own(viewer_id, now)
        records, seen = await self.store.records(ids, viewer_id)
        author = (await self.hydrator.account_rows([viewer_id])).get(viewer_id) or {"id": viewer_id}
        return self._group(author, records, ids, seen, now)

    async def _visible(self, viewer_id: int, story_id: int) -> Row:
        """An active story the viewer may see: their own, or one of an account they follow (403 otherwise)."""
        story = await self._active(story_id)
        if not await self.feed.story_viewers_among(viewer_id, [story["account_id"]]):
            raise Forbidden("Only followers of its author can see this story")
        return story

    async def mark_seen(self, viewer_id: int, story_id: int) -> None:
        """A follower saw the story (counted once per viewer); the author's own views are not counted."""
        story = await self._visible(viewer_id, story_id)
        if story["account_id"] != viewer_id:
            await self.store.mark_seen(story_id, story["expires_at"], viewer_id, self.clock.now_ms())

    async def viewers(self, author_id: int, story_id: int, limit: int) -> list[Row]:
        """Accounts that viewed the author's active story, newest view first (404 for anyone else)."""
        story = await self._active(story_id)
        if story["account_id"] != author_id:
            raise NotFound("Record not found")
        ids = await self.store.viewers(story_id, limit)
        hidden = await self.relations.hidden_among(author_id, ids)  # a viewer blocked since is not listed
        accounts = await self.hydrator.account_rows([i for i in ids if i not in hidden])
        return [accounts[i] for i in ids if i in accounts]

    async def reply(self, viewer_id: int, story_id: int, caption: str) -> HydratedStatus:
        """A follower's reply to a story that takes replies: a direct message to its author."""
        story = await self._visible(viewer_id, story_id)
        if story["account_id"] == viewer_id:
            raise Unprocessable("Validation failed: you cannot reply to your own story")
        if not story["can_reply"]:
            raise Unprocessable("Validation failed: this story does not take replies")
        author = (await self.hydrator.account_rows([story["account_id"]])).get(story["account_id"])
        if author is None:
            raise NotFound("Record not found")
        return await self.statuses.create(
            viewer_id,
            text=f"@{author['username']} {caption}",
            visibility="direct",
            media_ids=[],
            in_reply_to_id=None,
            sensitive=False,
            spoiler_text="",
            language=None,
            idempotency_key=None,
        )
