"""The object store: immutable blobs by key, written so that a crash never leaves half a file.

Originals are content-addressed (``originals/ab/<sha256>``): the same bytes
uploaded twice are stored once. Variants live under their original's hash and
the pipeline version, so a re-run of a task writes the same keys. Every write
goes to a temporary file in the store's own scratch folder, is fsynced,
renamed into place and the directory fsynced: a reader sees the whole object
or none. ``ObjectStore`` is the interface; ``LocalObjectStore`` keeps objects
on this machine's disk (the single-machine default), ``media.s3.S3ObjectStore``
in an S3 bucket that every node reaches (``MEDIA_STORE_URL``, see
``docs/operations.md#media-storage``); ``object_store`` picks the configured one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiofiles
import aiofiles.os

from config import Settings

CHUNK = 256 * 1024


class StoreUnavailable(ConnectionError):
    """The object store did not answer, or refused (a remote store down or misconfigured): worth a retry later."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str  # a strong validator: changes whenever the stored bytes may have changed


class ObjectStore(Protocol):
    """What the media code needs from a blob store."""

    def temp_path(self, suffix: str = "") -> Path:
        """A fresh local scratch path on which ``put_file`` can be cheap (same filesystem)."""
        ...

    async def put_file(self, key: str, source: Path) -> bool:
        """Move the local file ``source`` in as ``key``; False if ``key`` already held it (source is dropped)."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` as ``key`` atomically, replacing any earlier object."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def stat(self, key: str) -> ObjectInfo | None: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present (an expired story's upload, when stories do not keep their media)."""
        ...

    def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start``..``end`` inclusive of ``key``, in chunks."""
        ...

    def local_file(self, key: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """A local file holding ``key`` for the block, for tools that need one (Pillow, ffmpeg)."""
        ...


def original_key(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256}"


def variant_key(sha256: str, name: str, pipeline: str) -> str:
    return f"{pipeline}/{sha256[:2]}/{sha256}/{name}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")


class LocalObjectStore:
    """Objects as files under ``root``; scratch files under ``root/tmp`` (same filesystem, so renames are atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    @contextlib.asynccontextmanager
    async def local_file(self, key: str) -> AsyncIterator[Path]:
        yield self.path(key)

    def temp_path(self, suffix: str = "") -> Path:
        return self.tmp / f"{uuid.uuid4().hex}{suffix}"

    async def _publish(self, source: Path, target: Path) -> None:
        """fsync ``source``, rename it to ``target``, fsync the directory: durable and all-or-nothing."""
        async with aiofiles.open(source, "rb+") as handle:
            await handle.flush()
            await aiofiles.os.wrap(os.fsync)(handle.fileno())
        await aiofiles.os.makedirs(target.parent, exist_ok=True)
        await aiofiles.os.replace(source, target)
        await aiofiles.os.wrap(_fsync_dir)(target.parent)

    async def put_file(self, key: str, source: Path) -> bool:
        target = self.path(key)
        if await aiofiles.os.path.exists(target):
            await aiofiles.os.unlink(source)
            return False
        await self._publish(source, target)
        return True

    async def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        temp = self.temp_path(target.suffix)
        try:
            async with aiofiles.open(temp, "wb") as handle:
                await handle.write(data)
            await self._publish(temp, target)
        finally:
            if await aiofiles.os.path.exists(temp):
                await aiofiles.os.unlink(temp)

    async def get(self, key: str) -> bytes:
        async with aiofiles.open(self.path(key), "rb") as handle:
            return await handle.read()

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = await aiofiles.os.stat(self.path(key))
        except FileNotFoundError:
            return None
        # Objects are only ever replaced by rename, so (inode, size, mtime) names one version of the bytes.
        tag = hashlib.sha256(f"{key}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:32]
        return ObjectInfo(size=st.st_size, etag=f'"{tag}"')

    async def exists(self, key: str) -> bool:
        return await aiofiles.os.path.isfile(self.path(key))

    async def delete(self, key: str) -> None:
        try:
            await aiofiles.os.unlink(self.path(key))
        except FileNotFoundError:
            pass

    async def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        remaining = end - start + 1
        async with aiofiles.open(self.path(key), "rb") as handle:
            await handle.seek(start)
            while remaining > 0:
                chunk = await handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk


def local_store(settings: Settings) -> LocalObjectStore:
    """The store every process of one machine shares: ``<state_dir>/media``."""
    return LocalObjectStore(settings.state_dir / "media")


def object_store(settings: Settings) -> ObjectStore:
    """The configured store: the S3 bucket of ``media_store_url`` when set, else the local disk."""
    if settings.media_store_url:
        from media.s3 import S3ObjectStore  # only deployments that use S3 load its client

        return S3ObjectStore.from_settings(settings)
    return local_store(settings)
