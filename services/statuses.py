"""Posts: create, read, delete, list an author's posts.

A post is in the graph before the API answers; the ``status.created`` event
then drives fan-out. If the process dies between the two, the post stays
``delivered: false`` and the fan-out sweeper re-emits it. The author's own
inbox gets the post at once, so it shows in their feed on the next read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from neo4j import AsyncManagedTransaction

import metrics
from config import Settings
from graph.follows import FollowGraph
from graph.statuses import AuthorNotFound, ParentNotFound, StatusGraph, new_status
from graph.tags import TagGraph
from ids import SnowflakeGenerator
from redis_store.events import EventStream
from redis_store.locks import Locks
from services.abuse import AbuseGuard
from services.availability import REDIS_DOWN
from services.errors import Forbidden, NotFound, Unprocessable
from services.feed import FeedManager
from services.hashtags import extract_tags
from services.hydrate import HydratedStatus, Hydrator
from services.likes import LikeService
from services.mentions import mentioned_usernames
from services.relations import RelationService

VISIBILITIES = ("public", "unlisted", "private", "direct")
REBLOG_VISIBILITIES = ("public", "unlisted", "private")  # a direct message cannot be shared
THREAD_DEPTH = 64  # how far up and down a thread ``context`` looks
IDEMPOTENCY_SECONDS = 3600
MediaAttacher = Callable[[AsyncManagedTransaction, int, int, list[int]], Awaitable[None]]


class StatusService:
    def __init__(
        self,
        settings: Settings,
        statuses: StatusGraph,
        follows: FollowGraph,
        hydrator: Hydrator,
        events: EventStream,
        redis: aioredis.Redis,
        ids: SnowflakeGenerator,
        feed: FeedManager,
        abuse: AbuseGuard,
        likes: LikeService,
        locks: Locks,
        relations: RelationService,
        tags: TagGraph,
    ) -> None:
        self.relations = relations
        self.settings = settings
        self.tags = tags
        self.statuses = statuses
        self.follows = follows
        self.hydrator = hydrator
        self.events = events
        self.redis = redis
        self.ids = ids
        self.feed = feed
        self.abuse = abuse
        self.likes = likes
        self.locks = locks
        self.media_attacher: MediaAttacher | None = None

    async def create(
        self,
        account_id: int,
        *,
        text: str,
        visibility: str,
        media_ids: list[int],
        in_reply_to_id: int | None,
        sensitive: bool,
        spoiler_text: str,
        language: str | None,
        idempotency_key: str | None,
    ) -> HydratedStatus:
        if not text.strip() and not media_ids:
            raise Unprocessable("Validation failed: Text can't be blank")
        if len(text) > self.settings.status_max_chars:
            raise Unprocessable(f"Validation failed: Text is too long (maximum is {self.settings.status_max_chars})")
        if visibility not in VISIBILITIES:
            raise Unprocessable(f"Validation failed: Visibility must be one of {', '.join(VISIBILITIES)}")
        if len(media_ids) > self.settings.media_max_per_status:
            raise Unprocessable(f"Validation failed: at most {self.settings.media_max_per_status} media attachments")
        if media_ids and self.media_attacher is None:
            raise Unprocessable("Validation failed: media attachments are not available")

        parent: HydratedStatus | None = None
        if in_reply_to_id is not None:
            parent = await self.get(in_reply_to_id, account_id)  # 404 if missing or not visible
            await self.abuse.rate_limit("comment", account_id)
            author = (await self.hydrator.account_rows([account_id])).get(account_id)
            if author is not None:
                await self.abuse.check_comment(author, text, in_reply_to_id)
        else:
            await self.abuse.rate_limit("post", account_id)
        if parent is not None and parent.status["visibility"] == "direct":
            visibility = "direct"  # a reply in a conversation stays in it
        mentions, mention_names = await self._mentions(account_id, text, parent if visibility == "direct" else None)

        status_id = self.ids.next_id()
        idem_key = f"idem:status:{account_id}:{idempotency_key}" if idempotency_key else None
        if idem_key and not await self.redis.set(idem_key, status_id, nx=True, ex=IDEMPOTENCY_SECONDS):
            return await self._replay(idem_key)

        now = int(time.time() * 1000)
        record = new_status(
            status_id,
            account_id,
            now,
            text=text,
            spoiler_text=spoiler_text,
            sensitive=sensitive,
            visibility=visibility,
            language=language,
            in_reply_to_id=in_reply_to_id,
            media_ids=media_ids,
            mentions=mentions,
            mention_names=mention_names,
            tags=extract_tags(text),
        )
        attach = self.media_attacher

        async def attach_media(tx: AsyncManagedTransaction) -> None:
            if media_ids and attach is not None:
                await attach(tx, account_id, status_id, media_ids)

        try:
            await self.tags.ensure(record["tags"], [self.ids.next_id() for _ in record["tags"]])
            row = await self.statuses.create(record, before_commit=attach_media)
        except ParentNotFound:
            await self._forget(idem_key)
            raise NotFound("The post you are replying to does not exist") from None
        except AuthorNotFound:
            await self._forget(idem_key)
            raise NotFound("Account not found") from None
        except BaseException:
            await self._forget(idem_key)
            metrics.inc(metrics.POSTS, kind="post" if in_reply_to_id is None else "comment", outcome="failed")
            raise
        # Independent steps, at once. The record goes into the cache, so the answer below does not read
        # it back from the graph; a step that fails leaves at worst a fan-out for the sweeper to redo.
        # A direct message is in no home feed, its author's included.
        own_home = [self.feed.push_to_own_home(account_id, (status_id, None))] if visibility != "direct" else []
        known, *_ = await asyncio.gather(
            self.hydrator.cache_statuses([row]),
            self.hydrator.account_cache.invalidate(account_id),
            *([self.hydrator.status_cache.invalidate(in_reply_to_id)] if in_reply_to_id is not None else []),
            *own_home,
            self.events.publish(
                "status.created",
                status_id=status_id,
                account_id=account_id,
                in_reply_to_account_id=parent.status["account_id"] if parent else None,
                visibility=visibility,
                mentions=mentions,
            ),
        )
        metrics.inc(metrics.POSTS, kind="post" if in_reply_to_id is None else "comment", outcome="created")
        return (await self.hydrator.hydrate([status_id], viewer_id=account_id, known=known))[0]

    async def _mentions(
        self, author: int, text: str, conversation: HydratedStatus | None
    ) -> tuple[list[int], list[str]]:
        """(ids, usernames) of the accounts the text mentions, in order, plus the participants of the direct
        message ``conversation`` replies to; the author, unknown names and accounts blocked either way left out."""
        names = mentioned_usernames(text, self.settings.instance_domain)
        found = await self.hydrator.accounts.ids_by_usernames(names)
        people = dict(found[name] for name in names if name in found)  # id -> username
        if conversation is not None:
            people.setdefault(conversation.status["account_id"], conversation.account["username"])
            for mentioned, name in zip(
                conversation.status.get("mentions") or (), conversation.status.get("mention_names") or (), strict=False
            ):
                people.setdefault(mentioned, name)
        people.pop(author, None)
        hidden = await self.relations.hidden_among(author, people)
        kept = [(i, name) for i, name in people.items() if i not in hidden]
        return [i for i, _ in kept], [name for _, name in kept]

    async def _forget(self, idem_key: str | None) -> None:
        if idem_key:
            await self.redis.delete(idem_key)

    async def _replay(self, idem_key: str) -> HydratedStatus:
        """The post an earlier request with the same Idempotency-Key made (waiting if it is in flight)."""
        for _ in range(100):
            existing = await self.redis.get(idem_key)
            if existing is None:
                break
            hydrated = await self.hydrator.hydrate([int(existing)])
            if hydrated:
                return hydrated[0]
            await asyncio.sleep(0.05)
        raise Unprocessable("A request with this Idempotency-Key is still in progress or failed; retry")

    async def get(self, status_id: int, viewer_id: int | None) -> HydratedStatus:
        hydrated = await self.hydrator.hydrate([status_id], viewer_id=viewer_id)
        if not hydrated or not await self.can_see(hydrated[0], viewer_id):
            raise NotFound("Record not found")
        return hydrated[0]

    async def visible_ids(self, posts: list[HydratedStatus], viewer_id: int | None) -> set[int]:
        """Which of ``posts`` the viewer may see: one relationship query for all private authors, one cached
        look-up for blocks. Hidden: a private post unless the viewer follows its author, a direct message
        unless the viewer wrote it or is mentioned in it, and anything by an account that blocks the viewer
        or that the viewer blocks (for a reblog, its sharer's and its original's author both count)."""
        shown_posts = [shown for post in posts for shown in (post, post.original)]
        private_authors = {
            shown.status["account_id"]
            for shown in shown_posts
            if shown.status["visibility"] == "private" and shown.status["account_id"] != viewer_id
        }
        following: set[int] = set()
        if private_authors and viewer_id is not None:
            following, _ = await self.follows.relationships(viewer_id, sorted(private_authors))
        hidden = await self.relations.hidden_among(viewer_id, {shown.status["account_id"] for shown in shown_posts})

        def allowed(shown: HydratedStatus) -> bool:
            author = shown.status["account_id"]
            if author in hidden:
                return False
            visibility = shown.status["visibility"]
            if visibility == "direct":
                return author == viewer_id or viewer_id in (shown.status.get("mentions") or ())
            return visibility != "private" or author == viewer_id or author in following

        return {post.id for post in posts if allowed(post) and allowed(post.original)}

    async def can_see(self, post: HydratedStatus, viewer_id: int | None) -> bool:
        return post.id in await self.visible_ids([post], viewer_id)

    async def delete(self, status_id: int, account_id: int) -> HydratedStatus:
        """Delete a post; its author may, and so may the author of the post a comment replies to."""
        post = await self.get(status_id, account_id)
        owner = post.status["account_id"]
        if account_id not in (owner, post.status.get("in_reply_to_account_id")):
            raise Forbidden("This action is not allowed")
        result = await self.statuses.delete(status_id)
        if result is None:
            raise NotFound("Record not found")
        deleted, reblogs = result
        touched = [status_id, *(r["id"] for r in reblogs)]
        for parent_key in ("in_reply_to_id", "reblog_of_id"):
            if deleted.get(parent_key) is not None:
                touched.append(deleted[parent_key])
        await self.hydrator.status_cache.invalidate(*touched)
        await self.hydrator.account_cache.invalidate(owner, *(r["account_id"] for r in reblogs))
        if deleted.get("reblog_of_id") is not None:
            await self.likes.remember_reblog(owner, deleted["reblog_of_id"], None)
        for record in (deleted, *reblogs):
            await self.events.publish(
                "status.deleted",
                status_id=record["id"],
                account_id=record["account_id"],
                reblog_of_id=record.get("reblog_of_id"),
                tags=record.get("tags") or [],
            )
        return post

    async def reblog(self, account_id: int, status_id: int, visibility: str) -> HydratedStatus:
        """Share a post with one's followers (once; sharing again returns the same reblog)."""
        original = (await self.get(status_id, account_id)).original
        if original.status["visibility"] == "direct":
            raise Unprocessable("Validation failed: Reblog of a direct message is not allowed")
        if original.status["visibility"] == "private":
            if original.status["account_id"] != account_id:
                raise Unprocessable("Validation failed: Reblog of a private post is not allowed")
            visibility = "private"  # sharing your own private post keeps it among your followers
        if visibility not in REBLOG_VISIBILITIES:
            raise Unprocessable(f"Validation failed: Visibility must be one of {', '.join(REBLOG_VISIBILITIES)}")
        await self.abuse.rate_limit("post", account_id)
        record = new_status(
            self.ids.next_id(), account_id, int(time.time() * 1000), reblog_of_id=original.id, visibility=visibility
        )
        try:
            async with self.locks.hold(f"reblog:{account_id}:{original.id}"):  # one reblog per account and post
                reblog, created = await self.statuses.create_reblog(record)
        except (ParentNotFound, AuthorNotFound):
            raise NotFound("Record not found") from None
        if created:
            await self.hydrator.status_cache.invalidate(original.id)
            await self.hydrator.account_cache.invalidate(account_id)
            await self.likes.remember_reblog(account_id, original.id, reblog["id"])
            await self.feed.push_to_own_home(account_id, (reblog["id"], original.id))
            await self.events.publish(
                "status.created",
                status_id=reblog["id"],
                account_id=account_id,
                reblog_of_id=original.id,
                reblog_of_account_id=original.status["account_id"],
            )
        return (await self.hydrator.hydrate([reblog["id"]], viewer_id=account_id))[0]

    async def unreblog(self, account_id: int, status_id: int) -> HydratedStatus:
        original = (await self.get(status_id, account_id)).original
        async with self.locks.hold(f"reblog:{account_id}:{original.id}"):
            reblog = await self.statuses.find_reblog(account_id, original.id)
            if reblog is not None:
                await self.delete(reblog["id"], account_id)
        return await self.get(original.id, account_id)

    async def reblogged_by(
        self, status_id: int, viewer_id: int | None, max_id: int | None, limit: int
    ) -> list[tuple[int, dict]]:
        """(reblog id as cursor, account) pairs, newest share first; accounts blocked either way left out."""
        pairs = await self.statuses.rebloggers(status_id, max_id, limit)
        hidden = await self.relations.hidden_among(viewer_id, [aid for _, aid in pairs])
        accounts = await self.hydrator.account_rows([aid for _, aid in pairs if aid not in hidden])
        return [(rid, accounts[aid]) for rid, aid in pairs if aid in accounts]

    async def context(
        self, status_id: int, viewer_id: int | None, after: int, limit: int
    ) -> tuple[list[HydratedStatus], list[HydratedStatus], int | None]:
        """(ancestors, a page of descendants, the cursor of the next page or None)."""
        post = await self.get(status_id, viewer_id)
        ancestor_ids = await self.statuses.ancestors(post.id, THREAD_DEPTH)
        descendant_ids = await self.statuses.descendants(post.id, after, limit + 1, THREAD_DEPTH)
        more = len(descendant_ids) > limit
        descendant_ids = descendant_ids[:limit]
        hydrated = await self.hydrator.hydrate(ancestor_ids + descendant_ids, viewer_id=viewer_id)
        by_id = {h.id: h for h in hydrated}
        visible = await self.visible_ids(hydrated, viewer_id)
        ancestors = [by_id[i] for i in ancestor_ids if i in visible]
        descendants = [by_id[i] for i in descendant_ids if i in visible]
        return ancestors, descendants, (descendant_ids[-1] if more else None)

    async def by_account(
        self,
        account_id: int,
        viewer_id: int | None,
        max_id: int | None,
        since_id: int | None,
        min_id: int | None,
        limit: int,
        exclude_replies: bool,
    ) -> list[HydratedStatus]:
        if await self.relations.hidden_among(viewer_id, [account_id]):
            return []  # blocked either way: nothing to show (Mastodon answers an empty list)
        may_see_private = viewer_id == account_id
        if viewer_id is not None and not may_see_private:
            try:
                may_see_private = await self.feed.followers.contains(account_id, viewer_id)
            except REDIS_DOWN:
                may_see_private = None
            if may_see_private is None:  # no complete list in Redis (a celebrity, say): ask the graph
                may_see_private = await self.follows.is_following(viewer_id, account_id)
        rows = await self.statuses.by_author(
            account_id,
            max_id,
            since_id,
            min_id,
            limit,
            exclude_replies,
            include_private=may_see_private,
            include_direct=viewer_id == account_id,
        )
        if not rows:
            return []
        known = await self.hydrator.cache_statuses(rows)
        posts = await self.hydrator.hydrate([r["id"] for r in rows], viewer_id=viewer_id, known=known)
        # Reblogs of other people's private posts: only for those who may see the original.
        visible = await self.visible_ids([p for p in posts if p.reblog is not None], viewer_id)
        return [p for p in posts if p.reblog is None or p.id in visible]
