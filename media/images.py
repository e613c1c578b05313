"""Image variants: orientation applied, metadata stripped, a square thumbnail and three widths, a blurhash.

Pure CPU work on one file, no I/O besides reading it, so the remote task and
the benchmark's process pool run exactly the same code. Variants are encoded
from fresh pixel buffers and saved without ``exif``/``xmp``, so no camera
metadata (GPS included) survives; only the ICC colour profile is kept, because
dropping it would change colours. Images are never upscaled: a width larger
than the original is made at the original's width, once.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import blurhash
from PIL import Image, ImageOps

PIPELINE = "v1"  # part of every variant key: change it when the output of this module changes
WIDTHS = (1080, 640, 320)
THUMB_SIDE = 320
STORY_FRAME = (1080, 1920)  # a story's 9:16 frame (Instagram's and Pixelfed's size)
JPEG_QUALITY = 85
WEBP_QUALITY = 82
BLURHASH_SIDE = 32
BLURHASH_COMPONENTS = (4, 4)  # Mastodon's choice
ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class Rendered:
    """One encoded variant."""

    name: str  # file name inside the media's variant folder, e.g. "w640.jpg"
    role: str  # "width" or "thumb"
    data: bytes
    width: int
    height: int
    content_type: str


@dataclass(frozen=True)
class ImageResult:
    width: int  # of the original, as displayed (after EXIF orientation)
    height: int
    variants: list[Rendered]
    blurhash: str


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _encode(image: Image.Image, name: str, role: str, alpha: bool, icc: bytes | None) -> Rendered:
    """JPEG for opaque images (smallest, universal); WebP when there is transparency to keep."""
    buffer = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if alpha:
        image.save(buffer, "WEBP", quality=WEBP_QUALITY, method=4, **extra)
        filename, content_type = f"{name}.webp", "image/webp"
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, **extra)
        filename, content_type = f"{name}.jpg", "image/jpeg"
    return Rendered(filename, role, buffer.getvalue(), image.width, image.height, content_type)


def compute_blurhash(image: Image.Image) -> str:
    """Mastodon-compatible blurhash from a small RGB copy of ``image``."""
    small = image.convert("RGB")
    small.thumbnail((BLURHASH_SIDE, BLURHASH_SIDE), Image.Resampling.BILINEAR)
    pixels = list(small.getdata())
    rows = [pixels[y * small.width : (y + 1) * small.width] for y in range(small.height)]
    return blurhash.encode(rows, *BLURHASH_COMPONENTS)


def _draft_box(raw: tuple[int, int], oriented: tuple[int, int]) -> tuple[int, int]:
    """The smallest decoded size (in stored orientation) that still yields every variant without upscaling."""
    ow, oh = oriented
    scale = max(min(WIDTHS[0], ow) / ow, min(THUMB_SIDE, ow, oh) / min(ow, oh))
    return math.ceil(raw[0] * scale), math.ceil(raw[1] * scale)


def render_image(source: Path | bytes) -> ImageResult:
    """Every variant of the image at ``source`` (a path, or the bytes of a file); raises on undecodable input."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
        opened.seek(0)  # animated GIF/WebP: the first frame
        orientation = opened.getexif().get(ORIENTATION_TAG, 1)
        raw = opened.size
        oriented = (raw[1], raw[0]) if orientation in (5, 6, 7, 8) else raw
        if opened.format == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the variants need no more: far cheaper.
            opened.draft(opened.mode, _draft_box(raw, oriented))
        icc = opened.info.get("icc_profile")
        alpha = _has_alpha(opened)
        image = ImageOps.exif_transpose(opened).convert("RGBA" if alpha else "RGB")
    ow, oh = oriented
    variants: list[Rendered] = []
    made = [image]
    for width in sorted({min(w, ow) for w in WIDTHS}, reverse=True):
        height = max(1, round(width * oh / ow))
        if made[-1].size != (width, height):
            # Each width is made from the previous, larger one: same quality, a fraction of the work.
            made.append(made[-1].resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0))
        variants.append(_encode(made[-1], f"w{width}", "width", alpha, icc))
    side = min(THUMB_SIDE, ow, oh)
    source = next(im for im in reversed(made) if min(im.size) >= side or im is image)
    thumb = ImageOps.fit(source, (side, side), Image.Resampling.LANCZOS)
    variants.append(_encode(thumb, "thumb", "thumb", alpha, icc))
    return ImageResult(ow, oh, variants, compute_blurhash(made[-1]))


def render_story_frame(source: Path | bytes, name: str = "story") -> Rendered:
    """The 9:16 frame a story shows: the whole picture, oriented and scaled to fit 1080x1920, centred on its
    own average colour (a story is never cropped: the author framed it). Metadata is dropped as for every
    variant."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
        opened.seek(0)
        icc = opened.info.get("icc_profile")
        image = ImageOps.exif_transpose(opened).convert("RGB")
    average = image.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    frame = ImageOps.pad(image, STORY_FRAME, Image.Resampling.LANCZOS, color=average)
    return _encode(frame, name, "story", False, icc)
