"""The per-process wiring: store clients and services, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from actors.registry import ActorDirectory
from config import Settings
from graph.accounts import AccountGraph
from graph.bookmarks import BookmarkGraph
from graph.driver import GraphClient, async_wait_for_graph
from graph.follows import FollowGraph
from graph.likes import LikeGraph
from graph.relations import RelationGraph
from graph.search import AccountSearchGraph
from graph.statuses import StatusGraph
from graph.stories import StoryGraph
from graph.suggestions import SuggestionGraph
from graph.tags import TagGraph
from redis_store.bookmarks import BookmarkCache
from redis_store.cache import RecordCache
from redis_store.client import claim_id_generator, redis_from
from redis_store.conversations import ConversationStore
from redis_store.discovery import DiscoveryStore
from redis_store.durability import Durability
from redis_store.events import EventStream
from redis_store.followers import FollowerLists
from redis_store.likes import LikeStore
from redis_store.live import LiveHub
from redis_store.locks import Locks
from redis_store.notifications import NotificationStore
from redis_store.ratelimit import RateLimiter
from redis_store.relations import RelationCache
from redis_store.stories import StoryStore
from redis_store.timelines import TimelineStore
from redis_store.worker_lease import LeasedGenerator
from services.abuse import AbuseGuard
from services.accounts import AccountService
from services.auth import AuthService
from services.bookmarks import BookmarkService
from services.clock import SYSTEM_CLOCK, Clock
from services.conversations import ConversationService
from services.discovery import DiscoveryService
from services.feed import FeedManager, HomeFeed
from services.follows import FollowService
from services.hydrate import Hydrator
from services.likes import LikeService
from services.media import MediaService
from services.notifications import NotificationService
from services.passwords import Passwords
from services.relations import RelationService
from services.safety import SafetyService
from services.search import ActorStatusIndex, SearchService
from services.statuses import StatusService
from services.stories import StoryService
from services.suggestions import SuggestionService
from services.tags import TagService


@dataclass
class AppContext:
    settings: Settings
    redis: aioredis.Redis
    graph: GraphClient
    ids: LeasedGenerator
    rate_limiter: RateLimiter
    auth: AuthService
    accounts: AccountService
    events: EventStream
    follows: FollowService
    statuses: StatusService
    feed: FeedManager
    home: HomeFeed
    likes: LikeService
    notifications: NotificationService
    live: LiveHub
    media: MediaService
    stories: StoryService
    relations: RelationService
    safety: SafetyService
    conversations: ConversationService
    bookmarks: BookmarkService
    search: SearchService
    suggestions: SuggestionService
    tags: TagService
    discovery: DiscoveryService

    @classmethod
    async def create(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> AppContext:
        """Every service, wired; ``clock`` is the time the time-bound rules read (``services.clock``)."""
        if not (settings.redis_url or settings.redis_cluster_urls) or not settings.neo4j_uri:
            raise RuntimeError(
                "REDIS_URL (or REDIS_CLUSTER_URLS) and NEO4J_URI must be set (`raygram up` sets them for the embedded"
                " services)"
            )
        redis = redis_from(settings, fail_fast=True)
        graph = GraphClient(
            settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database, fail_fast=True
        )
        await async_wait_for_graph(graph)
        ids = await claim_id_generator(redis)
        passwords = Passwords(settings)
        account_graph = AccountGraph(graph)
        follow_graph = FollowGraph(graph)
        status_graph = StatusGraph(graph)
        events = EventStream(redis, maxlen=settings.event_stream_max)
        actors = ActorDirectory(settings)
        account_cache = RecordCache(redis, "account", settings.account_cache_seconds)
        like_store = LikeStore(redis, settings)
        media = MediaService(settings, graph, ids)
        hydrator = Hydrator(
            status_graph,
            account_graph,
            RecordCache(redis, "status", settings.status_cache_seconds),
            account_cache,
            media,
        )
        rate_limiter = RateLimiter(redis)
        locks = Locks(redis)
        abuse = AbuseGuard(settings, redis, rate_limiter)
        likes = LikeService(settings, like_store, LikeGraph(graph), status_graph, hydrator, redis, ids, abuse)
        hydrator.page_view = likes.page_view
        bookmarks = BookmarkService(BookmarkGraph(graph), BookmarkCache(redis), hydrator, ids)
        hydrator.bookmarks = bookmarks.among
        timelines = TimelineStore(redis, settings.timeline_max, settings.outbox_max, settings.inactive_days)
        story_store = StoryStore(redis, settings.story_tray_max, Durability.configured(settings))
        relation_graph = RelationGraph(graph)
        relations = RelationService(relation_graph, RelationCache(redis))
        tag_graph = TagGraph(graph)
        feed = FeedManager(
            settings,
            timelines,
            follow_graph,
            FollowerLists(redis, settings.follower_list_days),
            status_graph,
            actors,
            relations,
            story_store,
            tag_graph,
        )
        follows = FollowService(
            follow_graph, account_graph, feed, events, account_cache, ids, abuse, locks, relations, relation_graph
        )
        statuses = StatusService(
            settings,
            status_graph,
            follow_graph,
            hydrator,
            events,
            redis,
            ids,
            feed,
            abuse,
            likes,
            locks,
            relations,
            tag_graph,
        )
        discovery_store = DiscoveryStore(redis, settings.tag_timeline_max, settings.public_timeline_max)
        tags = TagService(tag_graph, discovery_store, ids, feed, locks)
        media.start()
        ctx = cls(
            settings=settings,
            redis=redis,
            graph=graph,
            ids=ids,
            rate_limiter=rate_limiter,
            auth=AuthService(settings, account_graph, redis, ids, passwords),
            accounts=AccountService(settings, account_graph, ids, passwords, account_cache),
            events=events,
            follows=follows,
            statuses=statuses,
            likes=likes,
            notifications=NotificationService(
                NotificationStore(redis, settings.notifications_max), hydrator, relations
            ),
            live=LiveHub(
                redis,
                settings.streaming_heartbeat_seconds,
                settings.streaming_max_per_account,
                settings.streaming_max_per_address,
            ),
            feed=feed,
            home=HomeFeed(feed, hydrator),
            stories=StoryService(
                settings,
                story_store,
                StoryGraph(graph),
                feed,
                hydrator,
                media,
                events,
                locks,
                abuse,
                relations,
                statuses,
                clock,
            ),
            relations=relations,
            safety=SafetyService(relation_graph, relations, follows, account_graph, ids, events),
            conversations=ConversationService(ConversationStore(redis), hydrator),
            bookmarks=bookmarks,
            media=media,
            search=SearchService(
                settings,
                AccountSearchGraph(graph),
                follow_graph,
                hydrator,
                ActorStatusIndex(settings),
                relations,
                redis,
            ),
            suggestions=SuggestionService(settings, SuggestionGraph(graph), redis),
            tags=tags,
            discovery=DiscoveryService(discovery_store, hydrator, follow_graph, tag_graph, tags, relations),
        )
        ctx.statuses.media_attacher = media.attach_media_tx
        await ctx.live.start()
        return ctx

    async def close(self) -> None:
        await self.ids.release()  # the worker id is free for the next process at once, not after a lease
        await self.live.close()
        await self.media.close()
        await self.graph.close()
        await self.redis.aclose()
