"""Upload validation: the type is sniffed from the bytes, then the file is decoded within limits.

Nothing is trusted from the client: not the file name, not the declared
content type. Images are opened by Pillow restricted to the sniffed format,
their size is checked against the pixel limits before any pixel is decoded
(decompression bombs), then the whole stream is decoded so that truncated or
corrupt files are refused; videos are probed by ffmpeg, which must decode a
first frame. Each refusal is a ``Rejected`` subclass the service maps to 413,
415 or 422.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass

from PIL import Image

from config import Settings
from media.probe import ProbeError, parse_probe, probe_command

SNIFF_BYTES = 64
PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP"}
CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
}
# ISO-BMFF brands of still images and audio: the container is the same as MP4's, the content is not a video.
NOT_VIDEO_BRANDS = {
    b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
    b"mif1", b"msf1", b"avif", b"avis", b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ",
}  # fmt: skip
QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


class Rejected(Exception):
    """The upload is refused; ``str(exc)`` is the message for the client."""


class TooLarge(Rejected):
    pass


class Unsupported(Rejected):
    pass


class Invalid(Rejected):
    pass


@dataclass(frozen=True)
class Sniffed:
    kind: str  # image | video
    format: str  # a key of CONTENT_TYPES

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


@dataclass(frozen=True)
class Inspection:
    kind: str  # image | video
    format: str
    content_type: str
    width: int  # as stored (before EXIF orientation for images; as displayed for videos)
    height: int
    silent: bool = False  # a video without an audio track (Mastodon calls it gifv)
    duration: float = 0.0  # seconds, for videos


def sniff(head: bytes) -> Sniffed | None:
    """The media type from the first bytes of a file, or None if raygram does not take it."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "webp")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return Sniffed("video", "webm")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in NOT_VIDEO_BRANDS:
            return None
        return Sniffed("video", "mov" if brand == b"qt  " else "mp4")
    if head[4:8] in QUICKTIME_ATOMS:
        return Sniffed("video", "mov")
    return None


def check_size(sniffed: Sniffed, size: int, settings: Settings) -> None:
    limit = settings.media_image_max_bytes if sniffed.kind == "image" else settings.media_video_max_bytes
    if size > limit:
        raise TooLarge(f"File is too large: {sniffed.kind}s may be at most {limit // (1024 * 1024)} MB")
    if size == 0:
        raise Invalid("File is empty")


def inspect_image(path: str, fmt: str, settings: Settings) -> Inspection:
    """Open, bound and fully decode the image at ``path`` (blocking: run it in a thread)."""
    max_pixels = settings.media_image_max_pixels
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow refuses twice this at open time, before decoding
    try:
        with Image.open(path, formats=[PIL_FORMATS[fmt]]) as image:
            width, height = image.size
            if width < 1 or height < 1:
                raise Invalid("Image has no pixels")
            if width > settings.media_image_max_side or height > settings.media_image_max_side:
                raise Invalid(f"Image is too large: at most {settings.media_image_max_side} pixels a side")
            if width * height > max_pixels:
                raise Invalid(f"Image is too large: at most {max_pixels} pixels")
            if fmt == "jpeg":
                # Decoding at 1/8 scale still reads every entropy-coded byte, so truncation shows, at a fraction
                # of the cost of a full decode.
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except Image.DecompressionBombError:
        raise Invalid(f"Image is too large: at most {max_pixels} pixels") from None
    except Rejected:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise Invalid(f"Image is corrupt or truncated ({exc.__class__.__name__})") from None
    return Inspection("image", fmt, CONTENT_TYPES[fmt], width, height)


PROBE_SECONDS = 60.0


async def inspect_video(path: str, fmt: str, settings: Settings) -> Inspection:
    """Probe the video at ``path`` with ffmpeg without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        *probe_command(path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), PROBE_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise Invalid("Video could not be read in time") from None
    try:
        info = parse_probe(proc.returncode or 0, stderr.decode("utf-8", "replace"), path)
    except ProbeError as exc:
        raise Invalid(f"Video is corrupt or unsupported: {exc}") from None
    if info.width * info.height > settings.media_video_max_pixels:
        raise Invalid(f"Video is too large: at most {settings.media_video_max_pixels} pixels a frame")
    if info.duration > settings.media_video_max_seconds:
        raise Invalid(f"Video is too long: at most {settings.media_video_max_seconds:.0f} seconds")
    return Inspection(
        "video", fmt, CONTENT_TYPES[fmt], info.width, info.height, silent=not info.has_audio, duration=info.duration
    )


async def inspect_upload(path: str, head: bytes, size: int, settings: Settings) -> Inspection:
    """Sniff, size-check and decode the staged upload at ``path``; raises ``Rejected``."""
    sniffed = sniff(head)
    if sniffed is None:
        raise Unsupported("File type is not supported: upload JPEG, PNG, WebP or GIF images, or MP4, MOV or WebM video")
    check_size(sniffed, size, settings)
    if sniffed.kind == "image":
        return await asyncio.to_thread(inspect_image, path, sniffed.format, settings)
    return await inspect_video(path, sniffed.format, settings)
