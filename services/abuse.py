"""Abuse limits: per-account rate limits and comment spam heuristics.

Rate limits are fixed windows counted atomically in Redis (429 with
``Retry-After`` and ``X-RateLimit-*``). An action whose work is one Lua call
counts its hit inside that call (a like: ``LikeService.set_liked``) and hands
the decision back here (``refusal``). Spam rules reject with a 422 that
says why, before anything is written:
  * the same comment text on ``spam_same_text_posts`` different posts within
    ``spam_window_seconds``;
  * a burst of comments with links from an account younger than
    ``new_account_hours``.
"""

from __future__ import annotations

import hashlib
import re
import time

import redis.asyncio as aioredis

from config import Settings
from redis_store.ratelimit import RateDecision, RateLimit, RateLimiter
from services.errors import RateLimited, Unprocessable

LINK_RE = re.compile(r"https?://|www\.", re.IGNORECASE)
LINK_BURST_SECONDS = 600


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


class AbuseGuard:
    def __init__(self, settings: Settings, redis: aioredis.Redis, limiter: RateLimiter) -> None:
        self.settings = settings
        self.redis = redis
        self.limiter = limiter

    def limit(self, action: str, account_id: int) -> RateLimit:
        """The account's limit for ``action`` (post, comment, favourite, follow), from the settings."""
        s = self.settings
        return RateLimit.of(
            action, str(account_id), getattr(s, f"{action}_rate_limit"), getattr(s, f"{action}_rate_window")
        )

    async def rate_limit(self, action: str, account_id: int) -> None:
        """Count one ``action``; 429 past the account's limit."""
        decision = await self.limiter.count(self.limit(action, account_id))
        if not decision.allowed:
            raise self.refusal(action, decision)

    @staticmethod
    def refusal(action: str, decision: RateDecision) -> RateLimited:
        """The 429 (``Retry-After``, ``X-RateLimit-*``) for an action its hit took past the limit."""
        return RateLimited(f"Rate limit exceeded for {action}s; retry later", headers=decision.headers())

    async def check_comment(self, account: dict, text: str, parent_id: int) -> None:
        """Reject spammy comments; record the comment's fingerprint only when it is let through."""
        s = self.settings
        digest = hashlib.sha1(normalise(text).encode()).hexdigest()
        same_text = f"spam:text:{account['id']}:{digest}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.scard(same_text)
            pipe.sismember(same_text, parent_id)
            posts_with_text, already_here = await pipe.execute()
        if not already_here and posts_with_text + 1 >= s.spam_same_text_posts:
            raise Unprocessable("Comment rejected as spam: the same text was posted on too many posts")
        new_account = time.time() * 1000 - account["created_at"] < s.new_account_hours * 3_600_000
        has_link = bool(LINK_RE.search(text))
        if new_account and has_link:
            links = f"spam:links:{account['id']}"
            recent = int(await self.redis.get(links) or 0)
            if recent + 1 > s.new_account_link_comments:
                raise Unprocessable("Comment rejected as spam: too many links from a new account; try again later")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(same_text, parent_id)
            pipe.expire(same_text, s.spam_window_seconds)
            if new_account and has_link:
                pipe.incr(f"spam:links:{account['id']}")
                pipe.expire(f"spam:links:{account['id']}", LINK_BURST_SECONDS)
            await pipe.execute()
