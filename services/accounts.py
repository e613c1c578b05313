"""Sign-up, profiles and account look-ups.

Usernames follow Mastodon's rule for local accounts (letters, digits and
underscores) and are unique regardless of case; the graph's uniqueness
constraint, not a prior read, decides a race between two sign-ups.
"""

from __future__ import annotations

import re
import time

from config import Settings
from graph.accounts import AccountGraph, EmailTaken, UsernameTaken
from ids import SnowflakeGenerator
from redis_store.cache import RecordCache
from services.errors import NotFound, Unprocessable
from services.hydrate import read_aside
from services.passwords import Passwords

USERNAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
RESERVED_USERNAMES = {"admin", "administrator", "root", "support", "help", "api", "oauth", "settings", "about"}


def field_error(field: str, code: str, description: str) -> Unprocessable:
    """A Mastodon-style validation error with per-field details."""
    return Unprocessable(
        f"Validation failed: {field.capitalize()} {description}",
        details={field: [{"error": code, "description": description}]},
    )


class AccountService:
    def __init__(
        self,
        settings: Settings,
        graph: AccountGraph,
        ids: SnowflakeGenerator,
        passwords: Passwords,
        cache: RecordCache,
    ) -> None:
        self.settings = settings
        self.cache = cache  # the read-aside copy embedded in statuses; dropped on every profile change
        self.graph = graph
        self.ids = ids
        self.passwords = passwords

    def check_signup(self, username: str, email: str, password: str, agreement: bool) -> None:
        s = self.settings
        if not username:
            raise field_error("username", "ERR_BLANK", "can't be blank")
        if len(username) > s.username_max:
            raise field_error("username", "ERR_TOO_LONG", f"is too long (maximum is {s.username_max} characters)")
        if not USERNAME_RE.match(username):
            raise field_error("username", "ERR_INVALID", "must contain only letters, numbers and underscores")
        if username.lower() in RESERVED_USERNAMES:
            raise field_error("username", "ERR_RESERVED", "is reserved")
        if len(email) > 254 or not EMAIL_RE.match(email):
            raise field_error("email", "ERR_INVALID", "is invalid")
        if len(password) < s.password_min:
            raise field_error("password", "ERR_TOO_SHORT", f"is too short (minimum is {s.password_min} characters)")
        if len(password) > s.password_max:
            raise field_error("password", "ERR_TOO_LONG", f"is too long (maximum is {s.password_max} characters)")
        if not agreement:
            raise field_error("agreement", "ERR_ACCEPTED", "must be accepted")

    async def sign_up(self, username: str, email: str, password: str, agreement: bool, locale: str) -> dict:
        """Create an account; 422 with details when a field is bad or taken."""
        self.check_signup(username, email, password, agreement)
        if await self.graph.username_exists(username):  # fast path; the constraint is the real guard
            raise field_error("username", "ERR_TAKEN", "has been taken")
        if await self.graph.email_exists(email):
            raise field_error("email", "ERR_TAKEN", "has been taken")
        password_hash = await self.passwords.hash(password)
        try:
            return await self.graph.create_account(
                account_id=self.ids.next_id(),
                username=username,
                email=email,
                password_hash=password_hash,
                locale=locale,
                created_at=int(time.time() * 1000),
            )
        except UsernameTaken:
            raise field_error("username", "ERR_TAKEN", "has been taken") from None
        except EmailTaken:
            raise field_error("email", "ERR_TAKEN", "has been taken") from None

    async def get(self, account_id: int) -> dict:
        """An account by id, read aside through the same cache that hydration uses."""
        account = (await read_aside(self.cache, self.graph.get_accounts, [account_id])).get(account_id)
        if account is None:
            raise NotFound("Record not found")
        return account

    async def lookup(self, acct: str) -> dict:
        username, _, domain = acct.lstrip("@").partition("@")
        if domain and domain.lower() != self.settings.instance_domain.lower():
            raise NotFound("Record not found")
        account = await self.graph.get_by_username(username) if USERNAME_RE.match(username or "-") else None
        if account is None:
            raise NotFound("Record not found")
        return account

    async def update_profile(self, account_id: int, changes: dict) -> dict:
        s = self.settings
        if "display_name" in changes and len(changes["display_name"]) > s.display_name_max:
            raise field_error(
                "display_name", "ERR_TOO_LONG", f"is too long (maximum is {s.display_name_max} characters)"
            )
        if "note" in changes and len(changes["note"]) > s.note_max:
            raise field_error("note", "ERR_TOO_LONG", f"is too long (maximum is {s.note_max} characters)")
        account = (
            await self.graph.update_profile(account_id, changes)
            if changes
            else await self.graph.get_account(account_id)
        )
        if account is None:
            raise NotFound("Record not found")
        await self.cache.invalidate(account_id)
        return account
