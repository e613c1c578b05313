"""Mastodon entities (Account, CredentialAccount, …) from graph rows."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote

from config import Settings
from services.conversations import HydratedConversation
from services.hydrate import HydratedStatus
from services.notifications import HydratedNotification
from services.safety import Relationship
from services.tags import TagView


def iso_time(unix_ms: int | None) -> str | None:
    return None if unix_ms is None else _iso_time(unix_ms)


@lru_cache(maxsize=65_536)
def _iso_time(unix_ms: int) -> str:
    """Formatting dates was a tenth of a feed read's CPU; the same posts are rendered again and again."""
    return datetime.fromtimestamp(unix_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def note_html(note: str) -> str:
    """Plain-text profile notes become one escaped HTML paragraph, as Mastodon renders them."""
    if not note:
        return ""
    return "<p>" + html.escape(note).replace("\n", "<br />") + "</p>"


def account_entity(row: dict, settings: Settings) -> dict:
    base = settings.base_url
    username = row["username"]
    avatar = f"{base}/avatars/original/missing.png"
    header = f"{base}/headers/original/missing.png"
    last_status = row.get("last_status_at")
    return {
        "id": str(row["id"]),
        "username": username,
        "acct": username,
        "display_name": row.get("display_name") or "",
        "locked": bool(row.get("locked")),
        "bot": bool(row.get("bot")),
        "discoverable": bool(row.get("discoverable", True)),
        "group": False,
        "created_at": iso_time(row["created_at"]),
        "note": note_html(row.get("note") or ""),
        "url": f"{base}/@{username}",
        "uri": f"{base}/users/{username}",
        "avatar": avatar,
        "avatar_static": avatar,
        "header": header,
        "header_static": header,
        "followers_count": int(row.get("followers_count") or 0),
        "following_count": int(row.get("following_count") or 0),
        "statuses_count": int(row.get("statuses_count") or 0),
        "last_status_at": iso_time(last_status)[:10] if last_status else None,
        "emojis": [],
        "fields": [],
    }


def credential_account_entity(row: dict, settings: Settings) -> dict:
    entity = account_entity(row, settings)
    entity["source"] = {
        "privacy": "public",
        "sensitive": False,
        "language": row.get("locale") or "",
        "note": row.get("note") or "",
        "fields": [],
        "follow_requests_count": 0,
    }
    entity["role"] = {"id": "-99", "name": "", "permissions": "0", "color": "", "highlighted": False}
    return entity


def relationship_entity(relationship: Relationship) -> dict:
    r = relationship
    return {
        "id": str(r.id),
        "following": r.following,
        "showing_reblogs": r.following,
        "notifying": False,
        "languages": None,
        "followed_by": r.followed_by,
        "blocking": r.blocking,
        "blocked_by": r.blocked_by,
        "muting": r.muting,
        "muting_notifications": r.muting_notifications,
        "requested": r.requested,
        "requested_by": r.requested_by,
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }


def status_html(text: str) -> str:
    """Captions are plain text; Mastodon clients expect escaped HTML paragraphs."""
    if not text:
        return ""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p]
    return "".join("<p>" + html.escape(p).replace("\n", "<br />") + "</p>" for p in paragraphs)


def status_entities(posts: list[HydratedStatus], settings: Settings) -> list[dict]:
    memo: dict[int, dict] = {}
    return [status_entity(post, settings, memo) for post in posts]


def status_entity(post: HydratedStatus, settings: Settings, accounts: dict[int, dict] | None = None) -> dict:
    """A Status; ``accounts`` memoises account entities across a page (its posts share few authors)."""
    status = post.status
    memo = accounts if accounts is not None else {}
    account = memo.get(post.account["id"])
    if account is None:
        account = memo[post.account["id"]] = account_entity(post.account, settings)
    base = settings.base_url
    in_reply_to = status.get("in_reply_to_id")
    in_reply_to_account = status.get("in_reply_to_account_id")
    return {
        "id": str(status["id"]),
        "created_at": iso_time(status["created_at"]),
        "in_reply_to_id": str(in_reply_to) if in_reply_to is not None else None,
        "in_reply_to_account_id": str(in_reply_to_account) if in_reply_to_account is not None else None,
        "sensitive": bool(status.get("sensitive")),
        "spoiler_text": status.get("spoiler_text") or "",
        "visibility": status["visibility"],
        "language": status.get("language"),
        "uri": f"{base}/users/{account['username']}/statuses/{status['id']}",
        "url": f"{base}/@{account['username']}/{status['id']}",
        "replies_count": int(status.get("replies_count") or 0),
        "reblogs_count": int(status.get("reblogs_count") or 0),
        "favourites_count": post.favourites_count,
        "edited_at": None,
        "favourited": post.favourited,
        "reblogged": post.reblogged,
        "muted": False,
        "bookmarked": post.bookmarked,
        "pinned": False,
        "content": status_html(status.get("text") or ""),
        "text": status.get("text") or "",
        "filtered": [],
        "reblog": status_entity(post.reblog, settings, memo) if post.reblog else None,
        "application": None,
        "account": account,
        "media_attachments": post.media,
        "mentions": [
            {"id": str(i), "username": name, "acct": name, "url": f"{base}/@{name}"}
            for i, name in zip(status.get("mentions") or (), status.get("mention_names") or (), strict=False)
        ],
        "tags": [{"name": name, "url": tag_url(name, settings)} for name in status.get("tags") or ()],
        "emojis": [],
        "card": None,
        "poll": None,
    }


def tag_url(name: str, settings: Settings) -> str:
    return f"{settings.base_url}/tags/{quote(name)}"


def tag_entity(view: TagView, settings: Settings) -> dict:
    """A Tag: its history of uses and distinct accounts per day (seven days, today first), as strings."""
    name = view.tag["name"]
    return {
        "id": str(view.tag["id"]),
        "name": name,
        "url": tag_url(name, settings),
        "history": [{"day": str(d.day), "uses": str(d.uses), "accounts": str(d.accounts)} for d in view.history],
        "following": view.following,
    }


def conversation_entity(conversation: HydratedConversation, settings: Settings) -> dict:
    return {
        "id": str(conversation.id),
        "unread": conversation.unread,
        "accounts": [account_entity(a, settings) for a in conversation.accounts],
        "last_status": status_entity(conversation.last_status, settings) if conversation.last_status else None,
    }


def notification_entity(notification: HydratedNotification, settings: Settings) -> dict:
    record = notification.record
    return {
        "id": str(record["id"]),
        "type": record["type"],
        "group_key": record["group_key"],
        "created_at": iso_time(record["created_at"]),
        "account": account_entity(notification.account, settings),
        "status": status_entity(notification.status, settings) if notification.status else None,
    }


def notification_groups_entity(groups: list[tuple[str, list[HydratedNotification]]], settings: Settings) -> dict:
    """Mastodon 4.3's GroupedNotificationsResults: groups, plus the accounts and statuses they refer to."""
    accounts: dict[int, dict] = {}
    statuses: dict[int, dict] = {}
    result = []
    for key, members in groups:
        latest = members[0]
        for member in members:
            accounts.setdefault(member.account["id"], account_entity(member.account, settings))
        if latest.status is not None:
            statuses.setdefault(latest.status.id, status_entity(latest.status, settings))
        ids = [m.record["id"] for m in members]
        result.append(
            {
                "group_key": key,
                "notifications_count": len(members),
                "type": latest.record["type"],
                "most_recent_notification_id": str(max(ids)),
                "page_min_id": str(min(ids)),
                "page_max_id": str(max(ids)),
                "latest_page_notification_at": iso_time(latest.record["created_at"]),
                "sample_account_ids": list(dict.fromkeys(str(m.account["id"]) for m in members))[:8],
                "status_id": str(latest.status.id) if latest.status else None,
            }
        )
    return {"accounts": list(accounts.values()), "statuses": list(statuses.values()), "notification_groups": result}
