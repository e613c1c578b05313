"""Mastodon entities (Account, CredentialAccount, …) from graph rows."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from config import Settings


def iso_time(unix_ms: int | None) -> str | None:
    if unix_ms is None:
        return None
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
