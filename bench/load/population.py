"""A generated population: many users on a power-law follow graph with a few celebrities, seeded fast.

``plan_population`` is pure and deterministic (a seed): who follows whom, who
reads and posts how often, how many posts each user starts with, and the
celebrity threshold that makes exactly the planned celebrities celebrities.
Because the threshold is a stack setting, a run plans first, starts its stack
with ``plan.stack_env()``, then seeds.

``seed_population`` writes the plan into a running stack. Signing up a
thousand users over HTTP would take minutes (argon2 per account), so
accounts, follow edges and posts are written straight into the graph in
batched managed transactions (``UNWIND``), with exactly the properties and
counters the API's own writes leave (``graph.accounts.create_account``,
``graph.follows.follow``, ``graph.statuses.create``): follower, following and
status counts are set from the plan, not approximated. Tokens go through the
service layer (``AuthService.issue_token``, the code the OAuth routes use).
Celebrities are flagged in the graph as a follow crossing the threshold flags
them, and promoted by the real path: an ``account.promoted`` event that a
fan-out worker carries out (outbox filled, followers' celebrity sets, then
``celeb:ready``). Nothing else is written to Redis: no user is active yet, so
each user's first home read rebuilds their timeline from the graph, as it
would for a user who signed up and followed people but never opened the app;
per-author follower lists, where the stack keeps them, are rebuilt from the
graph when missing, which they all are.

Photos: ``upload_photos`` makes a pool of unattached, ready media per author
over HTTP (``POST /api/v2/media``), sized from the schedule, so that a post
with a photo in the measured run is one request, as from a client whose
upload finished earlier. A handful of distinct small JPEGs are processed for
real; later uploads of the same bytes share their variants, as the media
service does for any repeated upload.
"""

from __future__ import annotations

import asyncio
import io
import math
import random
import uuid
from collections import Counter
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson

from config import Settings
from graph.accounts import AccountGraph
from graph.driver import GraphClient
from graph.statuses import new_status
from ids import SnowflakeGenerator, id_to_ms
from redis_store.client import claim_id_generator, redis_from
from redis_store.events import EventStream
from redis_store.timelines import celeb_ready_key
from services.auth import AuthService
from services.passwords import Passwords

PASSWORD = "load generator password"
SCOPES = ["read", "write", "follow"]
GRAPH_BATCH = 2_000  # rows per seeding transaction
TOKEN_CONCURRENCY = 16
UPLOAD_CONCURRENCY = 6
UPLOAD_ATTEMPTS = 5
DISTINCT_PHOTOS = 12
PROMOTION_PATIENCE = 180.0  # seconds for the fan-out workers to promote the celebrities

T = TypeVar("T")


# -- the plan (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class PopulationSpec:
    """What to generate; every field has a default that suits a small laptop-sized run."""

    users: int = 1_000
    celebrities: int = 3
    celebrity_share: float = 0.4  # the first celebrity is followed by this share of users, the next ones by less
    mean_following: float = 15.0  # ordinary follows per user (log-normal around this)
    popularity_exponent: float = 1.0  # Zipf exponent: who gets followed and whose profile is read
    reader_exponent: float = 0.9  # Zipf exponent over users: who reads (hot and cold readers)
    poster_exponent: float = 0.9  # Zipf exponent over users: who posts, likes and follows
    posts_per_user: float = 3.0  # seeded posts, on average (at least one each, at most ``max_seeded_posts``)
    max_seeded_posts: int = 40
    celebrity_threshold: int | None = None  # None: derived so that exactly the celebrities cross it
    seed: int = 1


@dataclass(frozen=True)
class PopulationPlan:
    """Users by index (0 .. users-1; celebrities first) and everything decided about them up front."""

    spec: PopulationSpec
    prefix: str  # username prefix, unique per plan so that plans can share a stack
    follows: list[tuple[int, int]]  # (follower, followee)
    celebrities: list[int]
    celebrity_threshold: int
    seeded_posts: list[int]  # per user
    reader_weights: list[float]
    poster_weights: list[float]
    popularity: list[float]  # follow and profile-read targets

    @property
    def users(self) -> int:
        return self.spec.users

    def followers_count(self) -> Counter[int]:
        return Counter(followee for _, followee in self.follows)

    def stack_env(self) -> dict[str, str]:
        """Settings the stack must run with for this plan's celebrities to be exactly the celebrities."""
        return {"CELEBRITY_THRESHOLD": str(self.celebrity_threshold)}

    def username(self, index: int) -> str:
        return f"{self.prefix}{index}"


def _zipf(order: list[int], exponent: float, size: int) -> list[float]:
    """Weights by index (``size`` of them): the user at rank r of ``order`` gets 1 / (r + 1) ** exponent, others 0."""
    weights = [0.0] * size
    for rank, user in enumerate(order):
        weights[user] = 1.0 / (rank + 1) ** exponent
    return weights


def plan_population(spec: PopulationSpec) -> PopulationPlan:
    """A follow graph with a power-law in-degree, ``spec.celebrities`` celebrities, and activity weights."""
    n, c = spec.users, spec.celebrities
    if n < 10 or not 0 <= c < n // 4:
        raise ValueError("need at least 10 users and fewer celebrities than a quarter of them")
    rng = random.Random(spec.seed)
    celebrity_sizes = [max(1, round(spec.celebrity_share * (n - 1) / (1 + 0.5 * k))) for k in range(c)]
    if spec.celebrity_threshold is not None:
        threshold = spec.celebrity_threshold
    else:
        smallest = min(celebrity_sizes, default=n)
        threshold = max(3, (smallest * 2) // 3)
    if c and min(celebrity_sizes) < threshold:
        raise ValueError(f"celebrities would have {min(celebrity_sizes)} followers, under the threshold {threshold}")
    # Ordinary authors stay below the threshold with room for the follows a run adds.
    cap = max(1, min(threshold - 1, (threshold * 2) // 3))

    ordinary = list(range(c, n))
    by_popularity = ordinary[:]
    rng.shuffle(by_popularity)
    popularity_ordinary = _zipf(by_popularity, spec.popularity_exponent, n)  # zero for celebrities
    follows: set[tuple[int, int]] = set()
    followers = [0] * n
    for k, size in enumerate(celebrity_sizes):
        for fan in rng.sample([u for u in range(n) if u != k], size):
            follows.add((fan, k))
            followers[k] += 1
    cumulative = []
    total = 0.0
    for user in ordinary:
        total += popularity_ordinary[user]
        cumulative.append(total)
    sigma = 0.6
    for user in range(n):
        wanted = max(1, min(len(ordinary) - 1, round(rng.lognormvariate(math.log(spec.mean_following), sigma))))
        got = 0
        for target in rng.choices(ordinary, cum_weights=cumulative, k=wanted * 4):
            if got == wanted:
                break
            if target == user or followers[target] >= cap or (user, target) in follows:
                continue
            follows.add((user, target))
            followers[target] += 1
            got += 1

    shuffled = list(range(n))
    rng.shuffle(shuffled)
    readers = _zipf(shuffled, spec.reader_exponent, n)
    rng.shuffle(shuffled)
    posters_order = [*range(c), *(u for u in shuffled if u >= c)]  # celebrities post the most
    posters = _zipf(posters_order, spec.poster_exponent, n)
    share = sum(posters)
    seeded = [max(1, min(spec.max_seeded_posts, round(spec.posts_per_user * n * w / share))) for w in posters]
    popularity = [float(followers[u] + 1) for u in range(n)]
    return PopulationPlan(
        spec=spec,
        prefix=f"ld{uuid.uuid4().hex[:6]}_",
        follows=sorted(follows),
        celebrities=list(range(c)),
        celebrity_threshold=threshold,
        seeded_posts=seeded,
        reader_weights=readers,
        poster_weights=posters,
        popularity=popularity,
    )


# -- the seeded population ---------------------------------------------------------


@dataclass
class Member:
    index: int
    id: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Population:
    """The plan, written into a stack: members with ids and tokens, seeded posts, a pool of photos."""

    plan: PopulationPlan
    members: list[Member]
    seeded_posts: dict[int, list[int]]  # member index -> status ids, oldest first
    media_pool: dict[int, list[int]] = field(default_factory=dict)  # member index -> unattached ready media ids

    def __post_init__(self) -> None:
        self.index_of = {m.id: m.index for m in self.members}

    @property
    def celebrity_ids(self) -> list[int]:
        return [self.members[i].id for i in self.plan.celebrities]

    def following(self) -> dict[int, set[int]]:
        """Member index -> indexes they follow, as seeded."""
        out: dict[int, set[int]] = {m.index: set() for m in self.members}
        for follower, followee in self.plan.follows:
            out[follower].add(followee)
        return out


async def bounded_gather(jobs: list[Coroutine[Any, Any, T]], limit: int) -> list[T]:
    """``asyncio.gather`` with at most ``limit`` jobs running."""
    gate = asyncio.Semaphore(limit)

    async def gated(job: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await job

    return await asyncio.gather(*(gated(job) for job in jobs))


async def _write_batches(graph: GraphClient, query: str, rows: list[Any], **params: Any) -> None:
    for start in range(0, len(rows), GRAPH_BATCH):
        await graph.write(query, rows=rows[start : start + GRAPH_BATCH], **params)


async def _create_app(http: aiohttp.ClientSession, base_url: str) -> str:
    data = {"client_name": "load generator", "scopes": " ".join(SCOPES), "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"}
    async with http.post(f"{base_url}/api/v1/apps", data=data) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /api/v1/apps: {response.status} {body[:300]!r}")
        return orjson.loads(body)["client_id"]


async def seed_population(plan: PopulationPlan, settings: Settings, http: aiohttp.ClientSession) -> Population:
    """Write ``plan`` into the running stack that ``settings`` describes; returns members with tokens."""
    redis = redis_from(settings)
    graph = GraphClient(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database)
    try:
        ids = await claim_id_generator(redis)
        client_id = await _create_app(http, settings.base_url)
        accounts = AccountGraph(graph)
        app = await accounts.get_app_by_client_id(client_id)
        if app is None:
            raise RuntimeError("the app just created is not in the graph")
        passwords = Passwords(settings)
        password_hash = await passwords.hash(PASSWORD)
        member_ids = [ids.next_id() for _ in range(plan.users)]
        await _seed_accounts(graph, plan, member_ids, password_hash, settings.instance_domain)
        await _seed_follows(graph, plan, member_ids, ids)
        seeded_posts = await _seed_posts(graph, plan, member_ids, ids)
        auth = AuthService(settings, accounts, redis, ids, passwords)
        tokens = await bounded_gather(
            [auth.issue_token(app, account_id, SCOPES) for account_id in member_ids], TOKEN_CONCURRENCY
        )
        members = [Member(i, member_ids[i], plan.username(i), token["access_token"]) for i, token in enumerate(tokens)]
        await _promote(graph, redis, settings, [member_ids[i] for i in plan.celebrities])
        return Population(plan, members, seeded_posts)
    finally:
        await graph.close()
        await redis.aclose()


async def _seed_accounts(
    graph: GraphClient, plan: PopulationPlan, member_ids: list[int], password_hash: str, domain: str
) -> None:
    """Accounts with the properties ``AccountGraph.create_account`` gives them, counters from the plan."""
    followers = plan.followers_count()
    following = Counter(follower for follower, _ in plan.follows)
    now = id_to_ms(member_ids[-1])
    rows = [
        {
            "id": member_ids[i],
            "username": plan.username(i),
            "key": plan.username(i).lower(),
            "email": f"{plan.username(i)}@{domain}".lower(),
            "followers": followers[i],
            "following": following[i],
            "celebrity": followers[i] >= plan.celebrity_threshold,
        }
        for i in range(plan.users)
    ]
    await _write_batches(
        graph,
        """
        UNWIND $rows AS r
        CREATE (a:Account {
            id: r.id, username: r.username, username_key: r.key, email_key: r.email,
            password_hash: $hash, locale: 'en', display_name: '', note: '', locked: false, bot: false,
            discoverable: true, created_at: $now, last_active_at: $now, last_status_at: null,
            followers_count: r.followers, following_count: r.following, statuses_count: 0, celebrity: r.celebrity
        })
        """,
        rows,
        hash=password_hash,
        now=now,
    )


async def _seed_follows(
    graph: GraphClient, plan: PopulationPlan, member_ids: list[int], ids: SnowflakeGenerator
) -> None:
    """``FOLLOWS`` edges as ``FollowGraph.follow`` makes them (a snowflake id and a time each)."""
    rows = []
    for follower, followee in plan.follows:
        edge = ids.next_id()
        rows.append([member_ids[follower], member_ids[followee], edge, id_to_ms(edge)])
    await _write_batches(
        graph,
        """
        UNWIND $rows AS r
        MATCH (a:Account {id: r[0]}), (b:Account {id: r[1]})
        CREATE (a)-[:FOLLOWS {id: r[2], created_at: r[3]}]->(b)
        """,
        rows,
    )


async def _seed_posts(
    graph: GraphClient, plan: PopulationPlan, member_ids: list[int], ids: SnowflakeGenerator
) -> dict[int, list[int]]:
    """Posts as ``StatusService.create`` records them (delivered: nobody is active to deliver to yet)."""
    order = [i for i in range(plan.users) for _ in range(plan.seeded_posts[i])]
    random.Random(plan.spec.seed + 1).shuffle(order)  # interleaved authors, as real posting is
    records: list[dict[str, Any]] = []
    seeded: dict[int, list[int]] = {i: [] for i in range(plan.users)}
    for n, author in enumerate(order):
        status_id = ids.next_id()
        text = f"Seeded post {n} by {plan.username(author)}: a caption of ordinary length, with a line break\nhere."
        records.append(new_status(status_id, member_ids[author], id_to_ms(status_id), text=text, delivered=True))
        seeded[author].append(status_id)
    await _write_batches(
        graph,
        "UNWIND $rows AS r MATCH (a:Account {id: r.account_id}) CREATE (s:Status) SET s = r",
        records,
    )
    last = {member_ids[a]: id_to_ms(posts[-1]) for a, posts in seeded.items() if posts}
    counts = [
        {"id": member_ids[a], "n": len(posts), "last": last[member_ids[a]]} for a, posts in seeded.items() if posts
    ]
    await _write_batches(
        graph,
        "UNWIND $rows AS r MATCH (a:Account {id: r.id}) SET a.statuses_count = r.n, a.last_status_at = r.last",
        counts,
    )
    return seeded


async def _promote(graph: GraphClient, redis: Any, settings: Settings, celebrity_ids: list[int]) -> None:
    """The event a follow crossing the threshold emits; waits until the fan-out workers switched them to pull."""
    if not celebrity_ids:
        return
    events = EventStream(redis, maxlen=settings.event_stream_max)
    for account_id in celebrity_ids:
        await events.publish("account.promoted", account_id=account_id)
    deadline = asyncio.get_running_loop().time() + PROMOTION_PATIENCE
    while not all(await asyncio.gather(*(redis.exists(celeb_ready_key(a)) for a in celebrity_ids))):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"celebrities not promoted within {PROMOTION_PATIENCE:.0f}s")
        await asyncio.sleep(0.2)


# -- photos ----------------------------------------------------------------------------


def small_jpeg(variant: int, width: int = 320, height: int = 240) -> bytes:
    """A small photo-like JPEG (gradient and shapes); ``variant`` makes distinct bytes."""
    from PIL import Image, ImageDraw

    rng = random.Random(variant)
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(10, 60)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82)
    return out.getvalue()


async def _upload(http: aiohttp.ClientSession, base_url: str, member: Member, photo: bytes, n: int) -> int:
    """One upload, retried while the server is busy (5xx, 429); waits until the media is ready (only ready
    media attach), polling while it answers 206 (processing)."""
    for attempt in range(UPLOAD_ATTEMPTS):
        form = aiohttp.FormData()
        form.add_field("file", photo, filename=f"photo{n}.jpg", content_type="image/jpeg")
        form.add_field("description", f"Generated photo {n}")
        try:
            async with http.post(f"{base_url}/api/v2/media", data=form, headers=member.headers) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status, body = 0, b""
        if status in (200, 202):
            break
        if (status and status < 500 and status != 429) or attempt + 1 == UPLOAD_ATTEMPTS:
            raise RuntimeError(f"POST /api/v2/media: {status} {body[:300]!r}")
        await asyncio.sleep(1.0)
    media_id = int(orjson.loads(body)["id"])
    if status == 200:
        return media_id
    for _ in range(240):
        async with http.get(f"{base_url}/api/v1/media/{media_id}", headers=member.headers) as check:
            body = await check.read()
            if check.status == 200:
                return media_id
            if check.status not in (206, 429) and check.status < 500:
                raise RuntimeError(f"GET /api/v1/media/{media_id}: {check.status} {body[:300]!r}")
        await asyncio.sleep(0.25)
    raise RuntimeError(f"uploaded photo {media_id} was not ready within a minute")


async def upload_photos(
    population: Population, http: aiohttp.ClientSession, base_url: str, needed: Mapping[int, int]
) -> int:
    """Add ``needed[index]`` ready, unattached photos to each member's pool; returns how many were uploaded."""
    photos = [small_jpeg(v) for v in range(DISTINCT_PHOTOS)]
    wanted = [(index, k) for index, count in sorted(needed.items()) for k in range(count)]
    if not wanted:
        return 0
    # The first upload of each distinct photo is processed for real; the rest share its variants.
    first = wanted[: len(photos)]
    rest = wanted[len(photos) :]
    results: list[tuple[int, int]] = []
    for n, (index, _) in enumerate(first):
        results.append((index, await _upload(http, base_url, population.members[index], photos[n], n)))

    async def one(n: int, index: int) -> tuple[int, int]:
        media_id = await _upload(http, base_url, population.members[index], photos[n % len(photos)], n)
        return index, media_id

    results += await bounded_gather(
        [one(n, index) for n, (index, _) in enumerate(rest, start=len(first))], UPLOAD_CONCURRENCY
    )
    for index, media_id in results:
        population.media_pool.setdefault(index, []).append(media_id)
    return len(results)
