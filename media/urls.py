"""Signed, expiring media URLs: ``/media/<key>?m=<media id>&e=<unix expiry>&s=<HMAC-SHA256(path, media, expiry)>``.

The media id names the upload the URL was made for: variants are stored by
content, so two uploads of the same bytes share a key, and serving checks that
this upload's post still exists and who may see it. Expiries are rounded up to
a step (an eighth of the lifetime), so every request in that step gets the
same URL and a CDN in front keeps one copy; responses may be cached until the
expiry and no longer (``max_age``).

The secret comes from settings (``MEDIA_URL_SECRET``), the same on every node.
On one machine it may be left out: it is then generated once and kept in the
state folder (created atomically, so concurrent replicas agree; the local
object store lives in the same folder, so whoever can serve the bytes can read
the secret). A deployment of several nodes (``Settings.multi_node``: a Ray
cluster elsewhere, or media in S3) refuses to start without it
(``require_secret``), since each node would make a secret of its own and
refuse the others' URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from config import Settings

MEDIA_PATH_PREFIX = "/media/"
SECRET_FILE = "media-url-secret"


class MissingSecret(RuntimeError):
    """A deployment of several nodes has no ``MEDIA_URL_SECRET``."""


def require_secret(settings: Settings) -> None:
    """Raise ``MissingSecret`` when ``settings`` describe several nodes and no shared secret."""
    if settings.multi_node and not settings.media_url_secret:
        raise MissingSecret(
            "MEDIA_URL_SECRET is not set, and this deployment spans several nodes (RAY_ADDRESS is another "
            "machine's, or media are in S3): set MEDIA_URL_SECRET to the same random string on every node "
            "(for example `python -c 'import secrets; print(secrets.token_hex(32))'`), so that a media URL "
            "signed by one replica is accepted by all"
        )


def load_or_create_secret(state_dir: Path) -> bytes:
    """The persisted secret; the first process to get here writes it, every other one reads that."""
    path = state_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    temp = state_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)  # fails if another process won the race; then its secret is the one
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    return bytes.fromhex(path.read_text().strip())


def signature(secret: bytes, path: str, media_id: int, expires: int) -> str:
    digest = hmac.new(secret, f"{path}\n{media_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _decimal(value: str | None, digits: int) -> int | None:
    """``value`` as an int when it is 1..``digits`` ASCII digits, else None."""
    if value is None or not (0 < len(value) <= digits and value.isascii() and value.isdigit()):
        return None
    return int(value)


class UrlSigner:
    def __init__(self, settings: Settings) -> None:
        require_secret(settings)
        configured = settings.media_url_secret
        self.secret = configured.encode() if configured else load_or_create_secret(settings.state_dir)
        self.ttl = max(1, settings.media_url_ttl_seconds)
        self.step = max(1, self.ttl // 8)
        self.base = (settings.cdn_base_url or settings.base_url).rstrip("/")

    def url(self, key: str, media_id: int, now: float | None = None, until: int | None = None) -> str:
        """The URL of the object ``key`` of upload ``media_id``, valid for at least the configured lifetime,
        or only until the Unix second ``until`` when that comes first (a story's URL ends with the story)."""
        path = MEDIA_PATH_PREFIX + quote(key)
        now = time.time() if now is None else now
        expires = (int(now + self.ttl) // self.step + 1) * self.step
        if until is not None:
            expires = min(expires, until)
        return f"{self.base}{path}?m={media_id}&e={expires}&s={signature(self.secret, path, media_id, expires)}"

    def verify(
        self, path: str, media_id: str | None, expires: str | None, sig: str | None, now: float | None = None
    ) -> tuple[int, int] | None:
        """(media id, expiry) when ``sig`` signs ``path``, ``media_id`` and ``expires`` and that moment has
        not passed; None otherwise."""
        media, until = _decimal(media_id, 19), _decimal(expires, 12)
        if media is None or until is None or not sig or not sig.isascii():
            return None
        if until < (time.time() if now is None else now):
            return None
        return (media, until) if hmac.compare_digest(signature(self.secret, path, media, until), sig) else None


def max_age(expires: int, now: float | None = None) -> int:
    """Seconds a response to a URL expiring at ``expires`` may be cached: until the URL stops working."""
    return max(0, int(expires - (time.time() if now is None else now)))
