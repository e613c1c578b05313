"""Mentions in a post's text: ``@username`` (or ``@username@this.domain``) names a local account.

The accounts are resolved in one graph query when the post is written and kept
on the status (``mentions``: ids, ``mention_names``: usernames, in the order of
the text), so rendering needs no look-up. A direct message's audience is its
mentions. Mentions of other domains are left as text: raygram does not federate.
"""

from __future__ import annotations

import re

MENTION_RE = re.compile(r"(?<![\w@/])@([A-Za-z0-9_]+)(?:@([A-Za-z0-9.-]+[A-Za-z0-9]))?")
MAX_MENTIONS = 50


def mentioned_usernames(text: str, local_domain: str) -> list[str]:
    """Usernames mentioned in ``text`` (lower-cased, first mention first, each once, at most ``MAX_MENTIONS``)."""
    names: dict[str, None] = {}
    for match in MENTION_RE.finditer(text):
        username, domain = match.group(1), match.group(2)
        if domain is None or domain.lower() == local_domain.lower():
            names.setdefault(username.lower(), None)
    return list(names)[:MAX_MENTIONS]
