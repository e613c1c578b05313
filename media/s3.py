"""Media objects in an S3 bucket, through obstore: the store a cluster of several nodes shares.

Selected by ``MEDIA_STORE_URL=s3://bucket[/prefix]?endpoint=http://host:port&region=us-east-1``
(no ``endpoint`` means AWS itself). Credentials come from ``MEDIA_S3_ACCESS_KEY_ID`` and
``MEDIA_S3_SECRET_ACCESS_KEY`` or, when those are empty, from the usual ``AWS_*`` variables, which
obstore reads itself. Every node reaches the same bucket, so an original stored by one replica is
processed by a task on any node, and its variants are served by any replica.

An object exists once the store has acknowledged its PUT, and a PUT, single or multipart, is
all-or-nothing in S3: that acknowledgement is the durability point of an upload
(``services.media`` answers the client only after it). Local files are scratch only: an upload is
staged and validated under ``<state_dir>/media-scratch`` before its PUT, and a task fetches an
original there to decode it (``local_file``); neither outlives the call that made it.

Replicas serve ``/media/...`` by streaming from the bucket (``open_range``), not by redirecting to a
presigned store URL: the signed raygram URL stays the only address of a file, checked on every request
(expiry, the post still there, who may cache it), ``ETag``/``Range``/``Cache-Control`` are the same on
every store, a CDN in front caches one URL per file, and the bucket need not be reachable by clients.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiofiles
import aiofiles.os
import obstore
import obstore.exceptions
from obstore.store import S3Store

from config import Settings
from launcher import process_start
from media.store import CHUNK, ObjectInfo, StoreUnavailable, _check_key

RETRY_FOR, FIRST_BACKOFF = timedelta(seconds=5), timedelta(seconds=0.1)


class BadStoreUrl(ValueError):
    """``MEDIA_STORE_URL`` is not an ``s3://`` URL this module understands."""


def store_from_url(url: str, access_key_id: str = "", secret_access_key: str = "") -> S3Store:
    """The obstore client of ``s3://bucket[/prefix]?endpoint=...&region=...``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise BadStoreUrl(f"MEDIA_STORE_URL must look like s3://bucket?endpoint=...&region=..., not {url!r}")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint", "region"}
    if unknown:
        raise BadStoreUrl(f"MEDIA_STORE_URL: unknown parameters {sorted(unknown)} (endpoint and region are known)")
    config: dict[str, object] = {}
    if "region" in query:
        config["region"] = query["region"]
    if "endpoint" in query:  # an S3-compatible server (SeaweedFS, MinIO...): addressed by path, not by host name
        config["endpoint"] = query["endpoint"]
        config["virtual_hosted_style_request"] = False
    if access_key_id:
        config["access_key_id"] = access_key_id
        config["secret_access_key"] = secret_access_key
    allow_http = query.get("endpoint", "").startswith("http://")
    # The total timeout bounds a whole response, body included: a video streamed to a slow client takes long.
    # Retries ride out a blip of the store; past RETRY_FOR the request fails (503) rather than hang.
    return S3Store(
        parts.netloc,
        prefix=parts.path.strip("/") or None,
        client_options={"allow_http": allow_http, "timeout": "1h", "connect_timeout": "5s"},
        retry_config={"max_retries": 5, "retry_timeout": RETRY_FOR, "backoff": {"init_backoff": FIRST_BACKOFF}},
        **config,  # type: ignore[arg-type]
    )


@contextlib.contextmanager
def _answered() -> Iterator[None]:
    """obstore's failures other than a missing object as ``StoreUnavailable`` (a 503, a retried task)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except obstore.exceptions.BaseError as exc:
        raise StoreUnavailable(f"media store: {exc}") from exc


class S3ObjectStore:
    """``media.store.ObjectStore`` on an S3 bucket; scratch files under ``scratch`` on this node."""

    def __init__(self, store: S3Store, scratch: Path) -> None:
        self.store = store
        self.tmp = scratch.resolve()
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Remove scratch files whose process is gone: a worker killed while it decoded an original leaves one.

        Scratch files are named after the process that made them, and the folder is this node's own.
        """
        for path in self.tmp.iterdir():
            owner = path.name.partition("-")[0]
            if owner.isdigit() and process_start(int(owner)) is None:
                path.unlink(missing_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3ObjectStore:
        store = store_from_url(
            settings.media_store_url, settings.media_s3_access_key_id, settings.media_s3_secret_access_key
        )
        return cls(store, settings.state_dir / "media-scratch")

    def temp_path(self, suffix: str = "") -> Path:
        return self.tmp / f"{os.getpid()}-{uuid.uuid4().hex}{suffix}"

    async def put_file(self, key: str, source: Path) -> bool:
        """PUT ``source`` as ``key`` unless the bucket holds it already; ``source`` is removed either way.

        Keys name their content (an original's hash, or a variant of it by a versioned pipeline), so when
        two uploads of the same bytes race, both PUT the same bytes and either may win.
        """
        _check_key(key)
        try:
            if await self.exists(key):
                return False
            with _answered():  # multipart past 5 MB: a video is never held in memory
                await obstore.put_async(self.store, key, source)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.unlink(source)

    async def put_bytes(self, key: str, data: bytes) -> None:
        _check_key(key)
        with _answered():
            await obstore.put_async(self.store, key, data)

    async def get(self, key: str) -> bytes:
        _check_key(key)
        with _answered():
            result = await obstore.get_async(self.store, key)
            return bytes(await result.bytes_async())

    async def stat(self, key: str) -> ObjectInfo | None:
        _check_key(key)
        try:
            with _answered():
                meta = await obstore.head_async(self.store, key)
        except FileNotFoundError:
            return None
        # S3's ETag changes with the bytes; objects here are never rewritten with other bytes anyway.
        etag = meta["e_tag"] or f'"{meta["size"]}-{int(meta["last_modified"].timestamp() * 1000)}"'
        return ObjectInfo(size=meta["size"], etag=etag if etag.startswith('"') else f'"{etag}"')

    async def exists(self, key: str) -> bool:
        return await self.stat(key) is not None

    async def delete(self, key: str) -> None:
        _check_key(key)
        with contextlib.suppress(FileNotFoundError), _answered():  # S3 answers a DELETE of a missing key with 204
            await obstore.delete_async(self.store, key)

    async def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Streams the range from the bucket as it arrives: a replica holds one chunk of it at a time."""
        _check_key(key)
        with _answered():
            result = await obstore.get_async(self.store, key, options={"range": (start, end + 1)})
            async for chunk in result.stream(min_chunk_size=CHUNK):
                yield bytes(chunk)

    @contextlib.asynccontextmanager
    async def local_file(self, key: str) -> AsyncIterator[Path]:
        _check_key(key)
        temp = self.temp_path()
        try:
            with _answered():
                result = await obstore.get_async(self.store, key)
                async with aiofiles.open(temp, "wb") as out:
                    async for chunk in result.stream(min_chunk_size=CHUNK):
                        await out.write(chunk)
            yield temp
        finally:
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.unlink(temp)
