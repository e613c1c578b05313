"""Signed, expiring media URLs: ``/media/<key>?e=<unix expiry>&s=<HMAC-SHA256(path, expiry)>``.

Expiries are rounded up to a step (an eighth of the lifetime), so every
request in that step gets the same URL and a CDN in front keeps one copy. The
secret comes from settings or, when none is configured, is generated once and
kept in the state folder (created atomically, so concurrent replicas agree;
the object store lives in the same folder, so whoever can serve the bytes can
read the secret).
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


def signature(secret: bytes, path: str, expires: int) -> str:
    digest = hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class UrlSigner:
    def __init__(self, settings: Settings) -> None:
        configured = settings.media_url_secret
        self.secret = configured.encode() if configured else load_or_create_secret(settings.state_dir)
        self.ttl = max(1, settings.media_url_ttl_seconds)
        self.step = max(1, self.ttl // 8)
        self.base = (settings.cdn_base_url or settings.base_url).rstrip("/")

    def url(self, key: str, now: float | None = None) -> str:
        """The public URL of the object ``key``, valid for at least the configured lifetime."""
        path = MEDIA_PATH_PREFIX + quote(key)
        now = time.time() if now is None else now
        expires = (int(now + self.ttl) // self.step + 1) * self.step
        return f"{self.base}{path}?e={expires}&s={signature(self.secret, path, expires)}"

    def verify(self, path: str, expires: str | None, sig: str | None, now: float | None = None) -> bool:
        """True when ``sig`` signs ``path`` and ``expires`` and that moment has not passed."""
        if not expires or not sig or not (expires.isascii() and expires.isdigit() and sig.isascii()):
            return False
        if len(expires) > 12:
            return False
        if int(expires) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(signature(self.secret, path, int(expires)), sig)
