"""Hashtags in captions and comments, by Mastodon's rule.

A hashtag is ``#`` followed by a name, where the ``#`` starts the text or
follows a character that is neither a word character nor ``/`` or ``)`` (so
``a#b``, ``http://x/#frag`` and ``f(x)#y`` hold none). The name is the longest
run of word characters (Unicode letters and digits, ``_``) and ``·``; it
counts only if it has a character that is neither a decimal digit nor ``·``
(``#2024`` is not a tag, ``#2024_trip`` is). Tags are case-insensitive: a
name is stored and looked up in its normalized form (NFKC, lower case), so
``#Sunset`` and ``#sunset`` are one tag.

This is a scanner rather than a regular expression on purpose:
``tests/test_hashtags.py`` checks it against an independent reference regex
with hypothesis.
"""

from __future__ import annotations

import unicodedata

SEPARATOR = "·"  # U+00B7 MIDDLE DOT, allowed inside names as in Mastodon
MAX_NAME = 100  # longer runs are not tags (Mastodon refuses longer tag names too)
MAX_PER_POST = 30  # Instagram's limit; the first 30 distinct tags of a post count


def _is_name_char(char: str) -> bool:
    return char.isalnum() or char == "_" or char == SEPARATOR


def _is_boundary(char: str) -> bool:
    """May this character stand right before the ``#`` of a tag?"""
    return not (char.isalnum() or char == "_" or char in "/)")


def _counts(name: str) -> bool:
    """Not digits (and separators) only, and not too long."""
    return 0 < len(name) <= MAX_NAME and any(c != SEPARATOR and not c.isdecimal() for c in name)


def extract_names(text: str) -> list[str]:
    """The tag names of ``text`` as written, in order of appearance (duplicates kept)."""
    names: list[str] = []
    i, end = 0, len(text)
    while (i := text.find("#", i)) != -1:
        start = i + 1
        if i > 0 and not _is_boundary(text[i - 1]):
            i = start
            continue
        j = start
        while j < end and _is_name_char(text[j]):
            j += 1
        if _counts(text[start:j]):
            names.append(text[start:j])
        i = max(j, start)
    return names


def normalize(name: str) -> str:
    """The stored form of a tag name: NFKC, lower case."""
    return unicodedata.normalize("NFKC", name).lower()


def is_valid_name(name: str) -> bool:
    """A name a tag may have (a path like ``/api/v1/tags/:name``), as written or normalized."""
    return all(_is_name_char(c) for c in name) and _counts(name)


def extract_tags(text: str) -> list[str]:
    """The distinct normalized tags of ``text``, first use first, at most ``MAX_PER_POST``."""
    tags = dict.fromkeys(normalize(name) for name in extract_names(text))
    return list(tags)[:MAX_PER_POST]
