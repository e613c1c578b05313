"""Video variants through the ffmpeg that ``imageio-ffmpeg`` bundles: a web MP4 and a poster frame.

The web MP4 is H.264 (yuv420p, ``+faststart`` so playback starts before the
download ends) at most 720p on its short side and 1280 pixels on its long
side, never upscaled, with AAC audio when the source has audio and no audio
track otherwise. Container and stream metadata are dropped (phones put GPS
positions there). The poster frame goes through the image pipeline, so it
gets the same widths, thumbnail and blurhash as a photo.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from media.images import ImageResult, render_image
from media.probe import VideoInfo, ffmpeg_exe, probe_video

SHORT_SIDE_MAX = 720
LONG_SIDE_MAX = 1280
FPS_MAX = 60
CRF = 23


class TranscodeError(Exception):
    """ffmpeg failed on a file that had passed the probe (e.g. damaged past its first frame)."""


@dataclass(frozen=True)
class VideoResult:
    info: VideoInfo
    width: int  # of the web MP4
    height: int
    mp4: Path  # a finished temporary file; the caller moves it into the store
    poster: ImageResult


def web_size(width: int, height: int) -> tuple[int, int]:
    """The web MP4's frame size: bounded, aspect kept, even (yuv420p needs it), never larger than the source."""
    scale = min(1.0, SHORT_SIDE_MAX / min(width, height), LONG_SIDE_MAX / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _run(args: list[str], timeout: float) -> bytes:
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TranscodeError("ffmpeg timed out") from None
    if done.returncode != 0:
        tail = " ".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-2:])[:300]
        raise TranscodeError(f"ffmpeg failed: {tail}")
    return done.stdout


def transcode_command(source: Path, target: Path, info: VideoInfo, size: tuple[int, int], threads: int) -> list[str]:
    audio = ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ac", "2"] if info.has_audio else ["-an"]
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(source),
        "-map", "0:v:0", *audio, "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
        "-vf", f"scale={size[0]}:{size[1]}", "-fpsmax", str(FPS_MAX),
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(CRF), "-pix_fmt", "yuv420p",
        "-threads", str(threads), "-movflags", "+faststart", "-f", "mp4", str(target),
    ]  # fmt: skip


def poster_frame(source: Path, info: VideoInfo, size: tuple[int, int], timeout: float) -> bytes:
    """A PNG of the frame a second in (or earlier for short clips): the first frame is often black."""
    at = min(1.0, info.duration / 4)
    return _run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-ss", f"{at:.3f}", "-i", str(source),
            "-map", "0:v:0", "-frames:v", "1", "-vf", f"scale={size[0]}:{size[1]}", "-map_metadata", "-1",
            "-f", "image2pipe", "-c:v", "png", "-",
        ],
        timeout,
    )  # fmt: skip


def render_video(source: Path, target: Path, threads: int = 1) -> VideoResult:
    """Transcode ``source`` to ``target`` (a scratch path) and make the poster; raises on failure."""
    info = probe_video(str(source))
    size = web_size(info.width, info.height)
    timeout = 120 + 20 * info.duration
    _run(transcode_command(source, target, info, size, threads), timeout)
    poster = poster_frame(source, info, size, timeout)
    if not poster:
        raise TranscodeError("no poster frame")
    return VideoResult(info, size[0], size[1], target, render_image(poster))
