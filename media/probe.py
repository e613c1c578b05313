"""What ffmpeg says about a video file: size as displayed, duration, frame rate, audio.

One ffmpeg run (the binary bundled by ``imageio-ffmpeg``) reads the header and
decodes the first video frame, so a file that ffmpeg cannot open or decode is
known to be broken before anything is stored.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

import imageio_ffmpeg

DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
SIZE_RE = re.compile(r" (\d{1,5})x(\d{1,5})[ ,\[]")
FPS_RE = re.compile(r" (\d+(?:\.\d+)?) fps")
STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+.*?: (Video|Audio): (\w+)")


class ProbeError(Exception):
    """ffmpeg could not open or decode the file; the message says why."""


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as displayed, after the rotation ffmpeg applies
    height: int
    duration: float
    fps: float
    codec: str
    has_audio: bool


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def probe_command(path: str) -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path, "-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"]


def parse_probe(returncode: int, stderr: str, path: str) -> VideoInfo:
    """The ``VideoInfo`` from the output of ``probe_command(path)``; messages never show the server's paths."""
    stderr = stderr.replace(path, "input")
    inputs, _, outputs = stderr.partition("\nOutput #0")
    streams = [m for m in (STREAM_RE.match(line) for line in inputs.splitlines()) if m]
    video_lines = [line for line in inputs.splitlines() if (m := STREAM_RE.match(line)) and m.group(1) == "Video"]
    if returncode != 0 or not video_lines:
        tail = " ".join(stderr.strip().splitlines()[-2:])[:300]
        raise ProbeError(f"not a readable video ({tail or 'no video stream'})")
    # The output stream shows the frame size after ffmpeg applied the display rotation.
    out_video = [line for line in outputs.splitlines() if " Video: " in line]
    size = SIZE_RE.search(out_video[0] if out_video else video_lines[0])
    duration = DURATION_RE.search(inputs)
    fps = FPS_RE.search(video_lines[0])
    frames = re.findall(r"frame=\s*(\d+)", outputs)
    if size is None or not frames or int(frames[-1]) < 1:
        raise ProbeError("no decodable video frame")
    seconds = 0.0
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    return VideoInfo(
        width=int(size.group(1)),
        height=int(size.group(2)),
        duration=seconds,
        fps=float(fps.group(1)) if fps else 0.0,
        codec=next(m.group(2) for m in streams if m.group(1) == "Video"),
        has_audio=any(m.group(1) == "Audio" for m in streams),
    )


def probe_video(path: str, timeout: float = 60.0) -> VideoInfo:
    """Probe ``path`` synchronously (for remote tasks; the API uses the async variant in ``validation``)."""
    try:
        done = subprocess.run(probe_command(path), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ProbeError("probing the video timed out") from None
    return parse_probe(done.returncode, done.stderr.decode("utf-8", "replace"), path)
