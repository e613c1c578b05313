"""The home feed's rules in one place (cf. Mastodon's ``FeedManager``).

Who gets what, when push and when pull, dedupe and filters are decided here;
the actors and stores only carry it out. ``actors.fanout`` turns stream
events into calls of ``distribute``, ``withdraw``, ``promote`` and ``demote``;
the inbox and outbox actors and ``redis_store.timelines`` write what they are
told. The rules:

Who gets a post
  * Its author, at once, in their own inbox (``push_to_own_home``).
  * Then its audience, the author's followers: pushed into their inboxes, a
    page of the author's follower list at a time, one call per inbox shard
    (never per follower); or, for a celebrity, one append to their outbox.
  * A direct message has no audience here: it is in no home feed, its
    author's included (its recipients get it through their conversations and
    notifications, ``actors.notifier``).
  * Users inactive for ``inactive_days`` get no pushes; their next read
    rebuilds their inbox from the graph (``populate_home``, fan-out on read).
    Only a finished rebuild makes an inbox count as kept.

Push or pull
  * An author reaching ``celebrity_threshold`` followers becomes a celebrity
    (the graph flips the flag in the follow's own transaction) and is pulled:
    their outbox is merged into each follower's page at read time. Below
    ``demote_below`` they are pushed again; the gap keeps an author near the
    line from flapping.
  * ``promote`` fills the outbox and puts the author in every follower's merge
    set *before* pull starts; ``demote`` switches back to push *before*
    pushing recent posts and emptying the merge sets. Nothing goes missing in
    between; the read merge removes what shows twice.
  * While Redis is down, a page is pulled from the graph instead (the answer
    says it is degraded: ``services.availability``).

Follows
  * Following an ordinary author backfills their recent posts; following a
    celebrity adds them to the merge; unfollowing removes both. For a while
    after an unfollow, late fan-out writes for the pair are refused.

Who gets a story (``services.stories``)
  * The same audience as a post, into a separate story tray per user
    (``redis_store.stories``): pushed page by page of followers, one call per
    inbox shard; a celebrity's stories are pulled from their own set at read
    time, through the same merge set as their posts. Each entry carries its
    deadline; a story past it is pushed to nobody.
  * Following an author merges their active stories into the follower's tray;
    unfollowing takes them out (and every read checks the follow anyway).
  * A story shows to its author and to the accounts that follow the author,
    never across a block either way (``story_viewers_among``), checked on
    every read with one follow query and one relations look-up per page: a
    locked account's pending requests are no follows.

Followed hashtags
  * A public post (not a reblog) has one more audience: the followers of its
    tags, pushed like the author's followers, a page of tag followers at a
    time from the graph (one query per page, one call per inbox shard). Who
    follows both the author and a tag gets it once: an inbox holds a post once.
  * A tag with ``tag_pull_threshold`` followers (the celebrity threshold
    unless set) is pulled instead: its tag timeline, which the discovery
    indexer keeps anyway, is merged into the pages of its followers at read
    time (``tagfollows:{user}``). Under ``tag_push_below`` followers its new
    posts are pushed again; those of the pulled period then leave the home
    pages (they stay in the tag timeline).
  * Following a tag backfills its newest posts; unfollowing it takes out of
    the inbox the posts it brought, those by accounts not followed and with no
    other followed tag (bounded by the inbox). A fan-out already paging the
    tag's followers as the unfollow happens may still add one later post.

Dedupe and filters
  * A post shows once per page: a reblog is not delivered where its original
    (or another reblog of it) is already in the inbox, and ``filter_home``
    keeps the newest of a post and its reblogs on each page.
  * ``filter_home`` drops what ``filter_from_home`` says the reader must not
    see: posts by, reblogs of, and posts mentioning an account that blocks the
    reader or is blocked or muted by them (a mute with a duration counts until
    its expiry), and direct messages. The facts come from one cached look-up
    per page (``services.relations``), never a graph query per read. A block
    or mute also has the inbox cleaned of the account's posts, asynchronously
    (``clear_from_home``, run by the fan-out worker); the filter covers the
    meantime and what the clean-up cannot reach (reblogs by others).

Rules that must run inside one Redis call to stay atomic (the reblog
dedupe, skipping inactive users, the unfollow guard, the rebuild state) are
carried out by the scripts of ``redis_store.timelines``, atomically for each
user: all of a user's keys are in the user's Redis Cluster slot. A batch of
users stays one call on a single server (one per slot on a cluster).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ray.actor import ActorHandle

import metrics
from actors.registry import ActorDirectory, group_by_shard
from config import Settings
from graph.follows import FollowGraph
from graph.statuses import StatusGraph
from graph.tags import TagGraph
from ids import id_to_ms, min_id_at_ms
from redis_store.followers import FollowerLists, FollowerPages
from redis_store.relations import Flags
from redis_store.stories import StoryStore
from redis_store.timelines import Entry, PageBounds, TimelineStore, tag_timeline_key
from services.availability import REDIS_DOWN, mark_degraded
from services.hydrate import HydratedStatus, Hydrator
from services.relations import RelationService

REBUILD_FOLLOWING_LIMIT = 5000
REBUILD_TAGS_LIMIT = 500  # followed tags whose recent posts a rebuilt inbox gets
PerShard = Callable[[ActorHandle, list[int]], Awaitable[object]]


class FeedManager:
    """Who gets what in home feeds. Services and actors call only these methods."""

    def __init__(
        self,
        settings: Settings,
        timelines: TimelineStore,
        follows: FollowGraph,
        followers: FollowerLists,
        statuses: StatusGraph,
        actors: ActorDirectory,
        relations: RelationService,
        stories: StoryStore,
        tags: TagGraph,
    ) -> None:
        self.relations = relations
        self.settings = settings
        self.timelines = timelines
        self.follows = follows
        self.followers = followers
        self.statuses = statuses
        self.actors = actors
        self.stories = stories
        self.tags = tags

    @property
    def celebrity_threshold(self) -> int:
        """Followers at which an author is promoted to pull."""
        return self.settings.celebrity_threshold

    @property
    def demote_below(self) -> int:
        """Followers under which a celebrity is pushed again."""
        return self.settings.demote_below

    @property
    def tag_pull_threshold(self) -> int:
        """Followers at which a tag's posts are pulled at read time."""
        return self.settings.tag_pull_threshold or self.celebrity_threshold

    @property
    def tag_push_below(self) -> int:
        """Followers under which a pulled tag is pushed again (the same gap as for celebrities)."""
        if not self.settings.tag_pull_threshold:
            return self.demote_below
        return max(1, int(self.settings.tag_pull_threshold * 0.8))

    # -- who gets a post ---------------------------------------------------------

    async def push_to_own_home(self, author_id: int, entry: Entry) -> None:
        """A post (or reblog) goes to its author's own inbox at once, before its fan-out."""
        await self.actors.inbox_for(author_id).deliver.remote([entry], [author_id])

    async def distribute(self, status_id: int, author_id: int) -> None:
        """A new post to its audience: the followers' inboxes (push) or the author's outbox (pull)."""
        status = await self.statuses.get(status_id)
        if status is None:  # deleted before its fan-out ran
            return
        if status.get("visibility") == "direct":  # its audience is its mentions, in no home feed
            await self.statuses.mark_delivered(status_id)
            return
        entry = (status_id, status.get("reblog_of_id"))
        if await self.timelines.is_celebrity_ready(author_id):
            await self.actors.outbox_for(author_id).append.remote(author_id, [status_id], announce=True)
        else:
            await self._each_follower_page(
                author_id, lambda inbox, users: inbox.deliver.remote([entry], users, author_id)
            )
        await self.push_to_own_home(author_id, entry)
        await self._push_to_tag_followers(status, entry)
        await self.statuses.mark_delivered(status_id)
        metrics.observe(metrics.FANOUT_LAG, time.time() * 1000 - id_to_ms(status_id))

    async def withdraw(self, status_id: int, author_id: int, reblog_of_id: int | None) -> None:
        """A deleted post out of every timeline that got it.

        A celebrity's post is only in their outbox and their own inbox. Copies pushed before a
        promotion may linger in inboxes until trimmed; hydration drops deleted posts from reads.
        """
        entry = (status_id, reblog_of_id)
        await self.actors.outbox_for(author_id).remove.remote(author_id, [status_id])
        if not await self.timelines.is_celebrity_ready(author_id):
            await self._each_follower_page(author_id, lambda inbox, users: inbox.remove.remote([entry], users))
        await self.actors.inbox_for(author_id).remove.remote([entry], [author_id])

    async def _push_to_tag_followers(self, status: dict, entry: Entry) -> None:
        """A public post to the followers of its pushed tags, a page of them at a time."""
        tags = status.get("tags") or []
        if not tags or status["visibility"] != "public" or status.get("reblog_of_id") is not None:
            return
        pushed = await self.timelines.pushed_tags(tags)  # followed by someone, and not pulled
        size, after = self.settings.follower_page_size, 0
        while pushed:
            users = await self.tags.follower_ids(pushed, after, size)
            groups = group_by_shard(users, self.settings.inbox_shards)
            author = status["account_id"]
            await asyncio.gather(
                *(self.actors.inboxes[k].deliver.remote([entry], members, author) for k, members in groups.items())
            )
            if len(users) < size:
                return
            after = users[-1]

    async def _each_follower_page(self, author_id: int, per_shard: PerShard) -> None:
        """``per_shard(inbox shard, its users)`` for every page of the author's followers."""
        pages = FollowerPages(self.followers, self.follows.follower_ids, author_id, self.settings.follower_page_size)
        async for followers in pages:
            groups = group_by_shard(followers, self.settings.inbox_shards)
            await asyncio.gather(*(per_shard(self.actors.inboxes[k], users) for k, users in groups.items()))

    # -- who gets a story ----------------------------------------------------------------

    async def distribute_story(self, story_id: int, author_id: int, deadline: int) -> None:
        """A new story to its audience until ``deadline``: the followers' trays, or nothing for a celebrity
        (pulled at read time)."""
        if deadline <= time.time() * 1000 or await self.timelines.is_celebrity_ready(author_id):
            return
        entries = [(story_id, deadline)]
        await self._each_follower_page(author_id, lambda inbox, users: inbox.deliver_stories.remote(entries, users))

    async def withdraw_story(self, story_id: int, author_id: int) -> None:
        """A story its author ended out of the trays (reads skip it already: its record is gone)."""
        if not await self.timelines.is_celebrity_ready(author_id):
            await self._each_follower_page(
                author_id, lambda inbox, users: inbox.remove_stories.remote([story_id], users)
            )

    async def story_viewers_among(self, viewer_id: int, author_ids: list[int]) -> set[int]:
        """The authors among ``author_ids`` whose stories the viewer may see: themselves and those they follow,
        less any blocked either way (one graph query and one relations look-up for the whole page)."""
        others = sorted(set(author_ids) - {viewer_id})
        if not others:
            return {viewer_id} & set(author_ids)
        following, _ = await self.follows.relationships(viewer_id, others)
        hidden = await self.relations.hidden_among(viewer_id, following)
        return (following - hidden) | ({viewer_id} & set(author_ids))

    # -- push or pull --------------------------------------------------------------

    async def promote(self, author_id: int) -> None:
        """Switch an author who became a celebrity to pull (the ``account.promoted`` event)."""
        if not await self.follows.is_celebrity(author_id):
            return  # demoted again before this ran
        recent = [s["id"] for s in await self.statuses.by_author(author_id, None, None, None, self.settings.outbox_max)]
        if recent:
            await self.actors.outbox_for(author_id).append.remote(author_id, recent)
        await self._each_follower_page(author_id, lambda inbox, users: inbox.follow_celebrity.remote(author_id, users))
        await self.timelines.set_celebrity_ready(author_id, True)
        await self.followers.drop(author_id)  # posts are pulled now; demotion rebuilds the list

    async def demote(self, author_id: int) -> None:
        """Switch a former celebrity back to push (the ``account.demoted`` event)."""
        if await self.follows.is_celebrity(author_id) is not False:
            return  # promoted again (or gone) before this ran
        await self.timelines.set_celebrity_ready(author_id, False)  # new posts are pushed from now on
        recent = [
            (s["id"], s.get("reblog_of_id"))
            for s in await self.statuses.by_author(author_id, None, None, None, self.settings.backfill_count)
        ]

        async def switch(inbox: ActorHandle, users: list[int]) -> None:
            if recent:
                await inbox.deliver.remote(recent, users, author_id)
            await inbox.unfollow_celebrity.remote(author_id, users)

        await self._each_follower_page(author_id, switch)
        await self.actors.outbox_for(author_id).clear.remote(author_id)

    # -- follows -----------------------------------------------------------------------

    async def merge_into_home(self, follower: int, followee: int) -> None:
        """A new follow: the followee's recent posts and active stories into the follower's inbox and tray, or
        their outbox into the merge."""
        await self.timelines.clear_unfollowed(follower, followee)
        inbox = self.actors.inbox_for(follower)
        if await self.timelines.is_celebrity_ready(followee):
            await inbox.follow_celebrity.remote(followee, [follower])  # their posts and stories are pulled
            return
        recent = await self.statuses.recent_entries([followee], 0, self.settings.backfill_count)
        await inbox.deliver.remote(recent[::-1], [follower], followee)
        stories = await self.stories.active_of(followee, int(time.time() * 1000))
        if stories:
            await inbox.deliver_stories.remote(stories, [follower])

    async def unmerge_from_home(self, follower: int, followee: int) -> None:
        """An unfollow: the followee's posts and stories out of the follower's inbox, tray and merge."""
        # First the guard, then the clean-up: a fan-out or promotion that read the follower list before
        # the unfollow either wrote already (and is cleaned up below) or is refused by the guard.
        await self.timelines.mark_unfollowed(follower, followee)
        inbox = self.actors.inbox_for(follower)
        await inbox.unfollow_celebrity.remote(followee, [follower])
        stories = await self.stories.active_of(followee, int(time.time() * 1000))
        if stories:
            await inbox.remove_stories.remote([story_id for story_id, _ in stories], [follower])
        oldest = await self.timelines.oldest_entry(follower)
        if oldest is None:
            return
        # Only the followee's posts inside the inbox's window can be in it: bounded by the window.
        entries = await self.statuses.recent_entries([followee], oldest - 1, self.settings.timeline_max)
        await inbox.remove.remote(entries, [follower])

    async def clear_from_home(self, user_id: int, target: int) -> None:
        """A block or mute: the target's posts out of the user's inbox (reads filter them meanwhile)."""
        oldest = await self.timelines.oldest_entry(user_id)
        if oldest is None:
            return
        entries = await self.statuses.recent_entries([target], oldest - 1, self.settings.timeline_max)
        if entries:
            await self.actors.inbox_for(user_id).remove.remote(entries, [user_id])

    # -- followed hashtags ---------------------------------------------------------------

    async def merge_tag_into_home(self, user_id: int, tag: str, followers_count: int) -> None:
        """A tag followed: into the read merge; its newest posts into the inbox unless it is pulled."""
        await self.timelines.follow_tag(user_id, tag)
        if followers_count >= self.tag_pull_threshold:
            await self.timelines.set_tag_pulled(tag, True)
            return
        if (await self.timelines.tags_pulled([tag]))[0]:
            return
        recent = await self.timelines.tag_entries([tag], self.settings.backfill_count)
        if recent:
            await self.actors.inbox_for(user_id).deliver.remote(recent[::-1], [user_id])

    async def unmerge_tag_from_home(self, user_id: int, tag: str, followers_count: int) -> None:
        """A tag unfollowed: out of the merge, and its posts out of the inbox unless something else brought
        them (their author is followed or is the user, or they carry another followed tag)."""
        await self.timelines.unfollow_tag(user_id, tag)
        if followers_count < self.tag_push_below:
            await self.timelines.set_tag_pulled(tag, False)
        candidates = await self.timelines.inbox_entries_in(user_id, tag_timeline_key(tag))
        if not candidates:
            return
        records = await self.statuses.get_many(candidates)
        authors = sorted({r["account_id"] for r in records.values()} - {user_id})
        following, _ = await self.follows.relationships(user_id, authors) if authors else (set(), set())
        still_followed = await self.timelines.followed_tags(user_id)
        unwanted = [
            (status_id, None)
            for status_id, record in records.items()
            if record["account_id"] != user_id
            and record["account_id"] not in following
            and not still_followed & set(record.get("tags") or ())
        ]
        if unwanted:
            await self.actors.inbox_for(user_id).remove.remote(unwanted, [user_id])

    # -- reading a home feed ---------------------------------------------------------

    async def home_entries(self, user_id: int, bounds: PageBounds, limit: int) -> tuple[str, list[int]]:
        """Post ids of a home page, newest first: the inbox and the followed celebrities' outboxes; and the way
        they were read (``inbox``, ``rebuild``, or ``degraded``: from the graph; the feed-load metric's path)."""
        try:
            was_active, ids = await self.timelines.read_page(user_id, bounds, limit)
            if not was_active:  # the inbox was not kept up: rebuild it, then read again
                try:
                    await self.populate_home(user_id)
                except BaseException:
                    await self.timelines.forget_active(user_id)  # so that the next read tries again
                    raise
                _, ids = await self.timelines.read_page(user_id, bounds, limit)
            metrics.inc(metrics.CACHE_LOOKUPS, cache="timeline", result="hit" if was_active else "miss")
            return ("inbox" if was_active else "rebuild"), ids
        except REDIS_DOWN:
            mark_degraded("redis")
            authors = await self.follows.followed_authors(user_id, REBUILD_FOLLOWING_LIMIT)
            return "degraded", await self.statuses.window_of_authors(
                [*authors, user_id], bounds.after, bounds.before, limit, bounds.ascending
            )

    async def populate_home(self, user_id: int) -> None:
        """Fill a cold inbox: recent posts of everyone the user follows (and their own) from the graph."""
        authors = await self.follows.followed_authors(user_id, REBUILD_FOLLOWING_LIMIT)
        ready = await self.timelines.celebrities_ready(authors)
        celebrities = [a for a, is_celebrity in zip(authors, ready, strict=True) if is_celebrity]
        ordinary = [a for a, is_celebrity in zip(authors, ready, strict=True) if not is_celebrity]
        window_start = min_id_at_ms(int(time.time() * 1000) - self.settings.rebuild_window_days * 86_400_000)
        entries = await self.statuses.recent_entries([*ordinary, user_id], window_start, self.settings.timeline_max)
        tags = await self.tags.followed_names(user_id, REBUILD_TAGS_LIMIT)
        await self.timelines.set_followed_tags(user_id, tags)
        pushed = [t for t, pulled in zip(tags, await self.timelines.tags_pulled(tags), strict=True) if not pulled]
        tagged = await self.timelines.tag_entries(pushed, self.settings.backfill_count)
        entries = sorted(set(entries) | set(tagged), key=lambda e: e[0], reverse=True)[: self.settings.timeline_max]
        await self.actors.inbox_for(user_id).rebuild.remote(user_id, entries[::-1], celebrities)

    async def filter_home(self, viewer_id: int, posts: list[HydratedStatus]) -> list[HydratedStatus]:
        """What a home page shows of its hydrated entries: each post once (``dedupe_reblogs``), none that
        ``filter_from_home`` refuses. The viewer's blocks and mutes load once for the whole page."""
        accounts = {a for post in posts for a in accounts_of(post)}
        facts = await self.relations.flags(viewer_id, accounts)
        now = self.relations.now_ms()
        return dedupe_reblogs([p for p in posts if not filter_from_home(p, viewer_id, facts, now)])


def accounts_of(post: HydratedStatus) -> list[int]:
    """The accounts a home entry involves: its author, the reblogged post's author, the accounts it mentions."""
    original = post.original.status
    return [post.status["account_id"], original["account_id"], *(original.get("mentions") or ())]


def filter_from_home(post: HydratedStatus, viewer_id: int, facts: dict[int, Flags], now_ms: int) -> bool:
    """True if the viewer's home must not show ``post`` (Mastodon's ``filter_from_home?``)."""
    if post.status["visibility"] == "direct" or post.original.status["visibility"] == "direct":
        return True
    if post.status["account_id"] == viewer_id:
        return False  # one's own posts and reblogs always show
    for account in accounts_of(post):
        flags = facts.get(account)
        if flags is not None and (flags.hidden or flags.muted_at(now_ms)):
            return True
    return False


def dedupe_reblogs(posts: list[HydratedStatus]) -> list[HydratedStatus]:
    """A post shows once per page: the newest of the post itself and its reblogs (Mastodon's rule).

    The inbox already skips a reblog whose original it holds; this covers what the read merge brings
    together, e.g. a celebrity's reblog in an outbox.
    """
    seen: set[int] = set()
    kept = []
    for post in posts:
        if post.original.id not in seen:
            seen.add(post.original.id)
            kept.append(post)
    return kept


class HomeFeed:
    """A home page as the API serves it: the manager's entries, hydrated, through its filters."""

    def __init__(self, manager: FeedManager, hydrator: Hydrator) -> None:
        self.manager = manager
        self.hydrator = hydrator

    async def read(
        self, user_id: int, max_id: int | None, since_id: int | None, min_id: int | None, limit: int
    ) -> list[HydratedStatus]:
        started = time.perf_counter()
        bounds = PageBounds.from_cursors(max_id, since_id, min_id)
        # Over-fetch a little: entries of deleted or filtered posts drop out below.
        path, ids = await self.manager.home_entries(user_id, bounds, limit + 5)
        posts = await self.manager.filter_home(user_id, await self.hydrator.hydrate(ids, viewer_id=user_id))
        metrics.observe(metrics.FEED_LOAD, (time.perf_counter() - started) * 1000, path=path)
        return posts[-limit:] if bounds.ascending else posts[:limit]
