"""Media against the real stack: uploads of real files, the variants users download, and every refusal.

Every test runs once per object store (the ``media`` fixture: the local disk, then SeaweedFS over S3).

Files are made here (Pillow images with EXIF orientation and GPS tags, short
videos through the ffmpeg that imageio-ffmpeg bundles); what is asserted is
what a client sees over HTTP, plus the store's keys where "stored once" and
"nothing stored" can only be seen there.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import struct
import subprocess
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import imageio_ffmpeg
import neo4j
import pytest
from PIL import ExifTags, Image

from bench.chaos import kill9, reap
from graph.driver import GraphClient
from media.store import original_key
from media.urls import UrlSigner
from tests.conftest import MediaBackend, User
from tests.test_streaming_limits import descendants
from tests.waiting import wait_for

RED, BLUE = (220, 20, 20), (20, 20, 220)
GPS = {1: "N", 2: (40.0, 26.0, 46.0), 3: "W", 4: (79.0, 58.0, 56.0)}
READY_PATIENCE = 120.0  # a guard against hanging, not a performance assertion


# -- files ----------------------------------------------------------------------


def camera_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestCam"
    exif[ExifTags.IFD.GPSInfo] = GPS
    return exif


def halves(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue, plus a unique pixel so no two test files share bytes."""
    image = Image.new(mode, (width, height), BLUE if mode == "RGB" else (*BLUE, 255))
    image.paste(RED if mode == "RGB" else (*RED, 255), (0, 0, width // 2, height))
    image.putpixel((width - 1, height - 1), tuple(uuid.uuid4().bytes[:3]) + (() if mode == "RGB" else (255,)))
    return image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def photo_jpeg(width: int = 1400, height: int = 900, orientation: int = 6) -> bytes:
    return encode(halves(width, height), "JPEG", quality=90, exif=camera_exif(orientation))


def ffmpeg(*args: str, cwd: Path) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *args], cwd=cwd, check=True)


def make_video(folder: Path, name: str, *, audio: bool, size: str = "480x360", seconds: float = 1.0) -> bytes:
    """A short H.264 clip with a GPS position in its container metadata, like a phone's."""
    inputs = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=25"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"] + (["-c:a", "aac"] if audio else [])
    tag = uuid.uuid4().hex  # unique bytes per call
    ffmpeg(*inputs, "-t", str(seconds), *codecs, "-metadata", "location=+40.4461-079.9822/",
           "-metadata", f"comment={tag}", name, cwd=folder)  # fmt: skip
    return (folder / name).read_bytes()


def png_bomb(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims side x side pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


# -- helpers ------------------------------------------------------------------------


def upload(http: httpx.Client, user: User, data: bytes, name: str, mime: str, **fields: str) -> httpx.Response:
    return http.post("/api/v2/media", headers=user.headers, files={"file": (name, data, mime)}, data=fields)


def wait_ready(http: httpx.Client, user: User, media_id: str) -> httpx.Response:
    """Poll the uploader's view until processing is over (206 means still processing)."""
    deadline = time.monotonic() + READY_PATIENCE
    while True:
        response = http.get(f"/api/v1/media/{media_id}", headers=user.headers)
        if response.status_code != 206:
            return response
        if time.monotonic() > deadline:
            pytest.fail(f"media {media_id} still processing after {READY_PATIENCE}s")
        time.sleep(0.2)


def upload_ready(http: httpx.Client, user: User, data: bytes, name: str, mime: str, **fields: str) -> dict:
    response = upload(http, user, data, name, mime, **fields)
    assert response.status_code in (200, 202), response.text
    if response.status_code == 202:
        assert response.json()["url"] is None
    ready = wait_ready(http, user, response.json()["id"])
    assert ready.status_code == 200, ready.text
    return ready.json()


def download(http: httpx.Client, url: str) -> httpx.Response:
    response = http.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def assert_no_metadata(image: Image.Image) -> None:
    assert len(image.getexif()) == 0
    assert "exif" not in image.info and "xmp" not in image.info


def store_files(media: MediaBackend) -> tuple[list[str], list[Path]]:
    """The store's keys and its scratch files."""
    return media.keys(), media.scratch_files()


def media_count(media: MediaBackend, account_id: str) -> int:
    s = media.settings
    with neo4j.GraphDatabase.driver(s.neo4j_uri, auth=(s.neo4j_user, s.neo4j_password)) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (m:Media) WHERE m.account_id = $id RETURN count(m) AS n",
            id=int(account_id),
            database_=s.neo4j_database,
        )
    return records[0]["n"]


def probe_text(data: bytes, folder: Path) -> str:
    path = folder / f"{uuid.uuid4().hex}.mp4"
    path.write_bytes(data)
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True)
    return done.stderr.decode()


# -- images ---------------------------------------------------------------------------


def test_photo_is_oriented_stripped_and_never_upscaled(media: MediaBackend, make_user) -> None:
    http = media.http
    user = make_user()
    entity = upload_ready(
        http, user, photo_jpeg(1400, 900, orientation=6), "photo.png", "text/plain", description="a cat"
    )
    assert entity["type"] == "image" and entity["description"] == "a cat" and entity["remote_url"] is None
    # EXIF orientation 6: the stored 1400x900 frame is shown rotated, 900 wide and 1400 high.
    assert entity["meta"]["original"] == {
        "width": 900,
        "height": 1400,
        "size": "900x1400",
        "aspect": round(900 / 1400, 4),
    }
    assert entity["blurhash"] and len(entity["blurhash"]) >= 20
    sizes = sorted((v["type"], v["width"], v["height"]) for v in entity["variants"])
    # 320 and 640 wide, and the 1080 width made at the original's 900: never upscaled.
    assert sizes == [("thumb", 320, 320), ("width", 320, 498), ("width", 640, 996), ("width", 900, 1400)]
    for variant in entity["variants"]:
        response = download(http, variant["url"])
        assert response.headers["content-type"] == "image/jpeg"
        image = open_image(response.content)
        assert image.format == "JPEG" and image.size == (variant["width"], variant["height"])
        assert_no_metadata(image)
        assert b"TestCam" not in response.content
    full = open_image(download(http, entity["url"]).content).convert("RGB")
    assert full.size == (900, 1400)
    # The red left half of the stored frame is the top half once rotated.
    top, bottom = full.getpixel((450, 200)), full.getpixel((450, 1200))
    assert top[0] > 150 and top[2] < 100, top
    assert bottom[2] > 150 and bottom[0] < 100, bottom
    preview = open_image(download(http, entity["preview_url"]).content)
    assert preview.size == (entity["meta"]["small"]["width"], entity["meta"]["small"]["height"]) == (640, 996)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_other_image_formats(media: MediaBackend, make_user, fmt: str) -> None:
    http = media.http
    user = make_user()
    if fmt == "GIF":  # an animated GIF: the first (red/blue) frame is the picture
        first = halves(700, 500).convert("P")
        second = Image.new("RGB", (700, 500), (0, 200, 0)).convert("P")
        data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    else:
        data = encode(halves(700, 500), fmt, exif=camera_exif(orientation=1))
    entity = upload_ready(http, user, data, "upload.bin", "application/octet-stream")
    assert entity["type"] == "image"
    assert entity["meta"]["original"]["width"] == 700 and entity["meta"]["original"]["height"] == 500
    assert sorted(v["width"] for v in entity["variants"] if v["type"] == "width") == [320, 640, 700]
    full = open_image(download(http, entity["url"]).content)
    assert full.format == "JPEG" and full.size == (700, 500)
    assert_no_metadata(full)
    left = full.convert("RGB").getpixel((100, 250))
    assert left[0] > 150 and left[1] < 100, left


def test_transparent_png_becomes_webp_and_small_images_stay_small(media: MediaBackend, make_user) -> None:
    http = media.http
    user = make_user()
    image = halves(200, 100, mode="RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))
    entity = upload_ready(http, user, encode(image, "PNG"), "a.png", "image/png")
    shapes = sorted((v["type"], v["width"], v["height"]) for v in entity["variants"])
    assert shapes == [("thumb", 100, 100), ("width", 200, 100)]
    variant = download(http, entity["url"])
    assert variant.headers["content-type"] == "image/webp"
    webp = open_image(variant.content)
    assert webp.format == "WEBP" and webp.mode == "RGBA" and webp.size == (200, 100)


# -- video ----------------------------------------------------------------------------


def test_video_gets_web_mp4_and_poster(media: MediaBackend, make_user, tmp_path: Path) -> None:
    http = media.http
    user = make_user()
    response = upload(http, user, make_video(tmp_path, "clip.mp4", audio=True), "clip.mp4", "video/mp4")
    assert response.status_code == 202 and response.json()["url"] is None and response.json()["type"] == "video"
    entity = wait_ready(http, user, response.json()["id"]).json()
    original = entity["meta"]["original"]
    assert (original["width"], original["height"], original["frame_rate"]) == (480, 360, "25/1")
    assert 0.9 <= original["duration"] <= 1.1
    mp4 = download(http, entity["url"])
    assert mp4.headers["content-type"] == "video/mp4"
    header = probe_text(mp4.content, tmp_path)
    assert "Video: h264" in header and "Audio: aac" in header and "480x360" in header
    assert "location" not in header.lower()
    poster = open_image(download(http, entity["preview_url"]).content)
    assert poster.format == "JPEG" and poster.size == (480, 360)
    assert entity["blurhash"]


def test_silent_large_mov_is_gifv_scaled_to_720p(media: MediaBackend, make_user, tmp_path: Path) -> None:
    http = media.http
    user = make_user()
    data = make_video(tmp_path, "clip.mov", audio=False, size="1600x900", seconds=0.4)
    entity = upload_ready(http, user, data, "clip.mov", "video/quicktime")
    assert entity["type"] == "gifv"
    header = probe_text(download(http, entity["url"]).content, tmp_path)
    assert "1280x720" in header and "Audio:" not in header


# -- refusals ----------------------------------------------------------------------------


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("too_large", 413),
        ("text", 415),
        ("heic", 415),
        ("corrupt_jpeg", 422),
        ("truncated_jpeg", 422),
        ("truncated_png", 422),
        ("bomb", 422),
        ("corrupt_video", 422),
        ("empty_gif", 422),
    ],
)
def test_refused_uploads_store_nothing(media: MediaBackend, make_user, case: str, status: int) -> None:
    http = media.http
    user = make_user()
    files = {
        "too_large": lambda: b"\xff\xd8\xff\xe0" + b"\0" * (media.settings.media_image_max_bytes + 1),
        "text": lambda: b"just some text, named like a photo",
        "heic": lambda: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64,
        "corrupt_jpeg": lambda: b"\xff\xd8\xff\xe0" + os.urandom(2000),
        "truncated_jpeg": lambda: truncated(photo_jpeg(600, 400)),
        "truncated_png": lambda: truncated(encode(Image.effect_noise((300, 200), 40), "PNG")),
        "bomb": png_bomb,
        "corrupt_video": lambda: b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41" + os.urandom(3000),
        "empty_gif": lambda: b"GIF89a",
    }
    before = store_files(media)
    response = upload(http, user, files[case](), "photo.jpg", "image/jpeg")
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str) and response.json()["error"]
    assert store_files(media) == before
    assert media_count(media, user.id) == 0


def test_bad_fields_and_missing_file(media: MediaBackend, make_user) -> None:
    http = media.http
    user = make_user()
    before = store_files(media)
    assert upload(http, user, photo_jpeg(50, 50), "a.jpg", "image/jpeg", focus="2,0").status_code == 422
    assert upload(http, user, photo_jpeg(50, 50), "a.jpg", "image/jpeg", description="x" * 1501).status_code == 422
    missing = http.post("/api/v2/media", headers=user.headers, data={"description": "no file"})
    assert missing.status_code == 422
    assert store_files(media) == before
    assert http.post("/api/v2/media", files={"file": ("a.jpg", b"x", "image/jpeg")}).status_code == 401


# -- the uploader's view -------------------------------------------------------------------


def test_only_the_uploader_reads_and_edits(media: MediaBackend, make_user) -> None:
    http = media.http
    owner, other = make_user(), make_user()
    created = http.post(
        "/api/v1/media", headers=owner.headers, files={"file": ("p.jpg", photo_jpeg(300, 200), "image/jpeg")}
    )
    assert created.status_code in (200, 202)
    media_id = created.json()["id"]
    assert http.get(f"/api/v1/media/{media_id}", headers=other.headers).status_code == 404
    assert http.put(f"/api/v1/media/{media_id}", headers=other.headers, data={"description": "mine"}).status_code == 404
    assert http.get("/api/v1/media/12345", headers=owner.headers).status_code == 404
    assert http.get("/api/v1/media/not-a-number", headers=owner.headers).status_code == 404
    updated = http.put(
        f"/api/v1/media/{media_id}", headers=owner.headers, json={"description": "sunset", "focus": "-0.5,0.25"}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["description"] == "sunset"
    assert updated.json()["meta"]["focus"] == {"x": -0.5, "y": 0.25}
    assert http.put(f"/api/v1/media/{media_id}", headers=owner.headers, data={"focus": "a,b"}).status_code == 422
    ready = wait_ready(http, owner, media_id).json()
    assert ready["description"] == "sunset" and ready["meta"]["focus"] == {"x": -0.5, "y": 0.25}


# -- durability and idempotence ------------------------------------------------------------


def test_concurrent_duplicates_are_stored_once(media: MediaBackend, make_user) -> None:
    http = media.http
    users = [make_user() for _ in range(4)]
    data = photo_jpeg(800, 600)
    with ThreadPoolExecutor(len(users)) as pool:
        responses = list(pool.map(lambda u: upload(http, u, data, "same.jpg", "image/jpeg"), users))
    assert all(r.status_code in (200, 202) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == len(users)
    entities = [wait_ready(http, u, r.json()["id"]).json() for u, r in zip(users, responses, strict=True)]
    assert {e["meta"]["original"]["size"] for e in entities} == {"600x800"}
    sha = hashlib.sha256(data).hexdigest()
    originals = [key for key in media.keys() if sha in key and key.startswith("originals/")]
    assert len(originals) == 1 and asyncio.run(media.store().get(originals[0])) == data
    assert not media.scratch_files()
    # A later upload of the same bytes shares the finished variants and is ready at once.
    again = upload(http, make_user(), data, "same.jpg", "image/jpeg")
    assert again.status_code == 200 and again.json()["url"]


def media_worker_in_flight(patience: float) -> int:
    """The pid of a Ray worker of this session while it runs a media task (Ray titles it ``ray::process_media``)."""

    def running() -> int | None:
        for pid in descendants(os.getpid()):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::process_media"):
                    return pid
            except OSError:
                continue
        return None

    # Polled often: the task runs for a second or two, and the kill must land while it does.
    return wait_for(running, lambda pid: pid is not None, "a media task running", patience, interval=0.01)


def test_worker_killed_mid_task_is_retried(media: MediaBackend, make_user) -> None:
    http = media.http
    user = make_user()
    data = photo_jpeg(6000, 4000, orientation=1)  # large enough that processing runs for a while
    response = upload(http, user, data, "p.jpg", "image/jpeg")
    assert response.status_code == 202, response.text
    pid = media_worker_in_flight(patience=30)
    kill9(pid, "ray::process_media")  # from outside, while the task runs: its title says it was running
    reap(pid)
    ready = wait_ready(http, user, response.json()["id"])
    assert ready.status_code == 200, ready.text  # Ray's retry finished the job
    shapes = sorted((v["type"], v["width"], v["height"]) for v in ready.json()["variants"])
    assert shapes == [("thumb", 320, 320), ("width", 320, 213), ("width", 640, 427), ("width", 1080, 720)]
    for variant in ready.json()["variants"]:
        assert open_image(download(http, variant["url"]).content).size == (variant["width"], variant["height"])
    assert not media.scratch_files()


def _stuck_record(media: MediaBackend, account_id: str, original: bytes) -> int:
    """What a replica that crashed right after acknowledging an upload leaves: the original and a processing record."""
    sha = hashlib.sha256(original).hexdigest()
    asyncio.run(media.store().put_bytes(original_key(sha), original))
    media_id = int(time.time() * 1000) << 22 | 1023 << 12
    s = media.settings
    record = {
        "id": media_id, "account_id": int(account_id), "kind": "image", "state": "processing", "sha256": sha,
        "size": len(original), "format": "jpeg", "content_type": "image/jpeg", "created_at": 0, "attempt_at": 0,
    }  # fmt: skip
    with neo4j.GraphDatabase.driver(s.neo4j_uri, auth=(s.neo4j_user, s.neo4j_password)) as driver:
        driver.execute_query("CREATE (m:Media) SET m = $record", record=record, database_=s.neo4j_database)
    return media_id


def test_stuck_processing_is_relaunched(media: MediaBackend, make_user) -> None:
    http = media.http
    user = make_user()
    media_id = _stuck_record(media, user.id, photo_jpeg(500, 300, orientation=1))
    ready = wait_ready(http, user, str(media_id))
    assert ready.status_code == 200, ready.text
    assert ready.json()["meta"]["original"]["size"] == "500x300"


def test_failed_processing_has_a_reason_and_no_variants(media: MediaBackend, make_user) -> None:
    http = media.http
    user = make_user()
    before = {key for key in media.keys() if not key.startswith("originals/")}
    media_id = _stuck_record(media, user.id, b"\xff\xd8\xff\xe0 not really a jpeg " + os.urandom(64))
    failed = wait_ready(http, user, str(media_id))
    assert failed.status_code == 422 and "processing failed" in failed.json()["error"].lower()
    assert {key for key in media.keys() if not key.startswith("originals/")} == before


# -- signed downloads ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(media: MediaBackend, make_user) -> dict:
    http = media.http
    user = make_user()
    return upload_ready(http, user, photo_jpeg(900, 600, orientation=1), "p.jpg", "image/jpeg")


def test_tampered_and_expired_urls_are_forbidden(media: MediaBackend, served: dict) -> None:
    http = media.http
    url = httpx.URL(served["url"])
    good = download(http, str(url))
    params = dict(url.params)
    # Not attached to a post yet: only the uploader's browser may keep it, and only while the URL works.
    cache, max_age, immutable = good.headers["cache-control"].split(", ")
    assert cache == "private" and immutable == "immutable"
    assert 0 < int(max_age.removeprefix("max-age=")) <= int(params["e"]) - time.time() + 1
    bad_sig = ("A" if params["s"][0] != "A" else "B") + params["s"][1:]
    assert http.get(str(url.copy_with(params={**params, "s": bad_sig}))).status_code == 403
    assert http.get(str(url.copy_with(params={**params, "e": str(int(params["e"]) + 1)}))).status_code == 403
    assert http.get(str(url.copy_with(params={"e": params["e"]}))).status_code == 403
    other = httpx.URL(served["preview_url"])
    assert http.get(str(other.copy_with(params=params))).status_code == 403  # another path, this signature
    signer = UrlSigner(media.settings)  # the secret every replica shares: the state folder's, or configured
    key = url.path.partition("/media/")[2]
    media_id = int(params["m"])
    assert http.get(signer.url(key, media_id)).status_code == 200
    expired = signer.url(key, media_id, now=time.time() - 2 * media.settings.media_url_ttl_seconds - 60)
    response = http.get(expired)
    assert response.status_code == 403 and response.json()["error"]
    assert http.get(signer.url("originals/00/" + "0" * 64, media_id)).status_code == 404  # originals are never served


def test_conditional_and_range_requests(media: MediaBackend, served: dict) -> None:
    http = media.http
    full = download(http, served["url"])
    body, etag = full.content, full.headers["etag"]
    assert full.headers["accept-ranges"] == "bytes" and int(full.headers["content-length"]) == len(body)
    not_modified = http.get(served["url"], headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified.headers["etag"] == etag
    assert http.get(served["url"], headers={"If-None-Match": '"other"'}).status_code == 200
    part = http.get(served["url"], headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == body[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(body)}"
    tail = http.get(served["url"], headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == body[-50:]
    rest = http.get(served["url"], headers={"Range": f"bytes={len(body) - 5}-"})
    assert rest.status_code == 206 and rest.content == body[-5:]
    beyond = http.get(served["url"], headers={"Range": f"bytes={len(body)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(body)}"
    stale_if_range = http.get(served["url"], headers={"Range": "bytes=0-9", "If-Range": '"older"'})
    assert stale_if_range.status_code == 200 and stale_if_range.content == body
    head = http.head(served["url"])
    assert head.status_code == 200 and head.headers["content-length"] == str(len(body)) and head.content == b""


# -- statuses -----------------------------------------------------------------------------


def test_attach_to_a_status_and_hydrate(media: MediaBackend, make_user) -> None:
    http = media.http
    owner, other = make_user(), make_user()
    first = upload_ready(http, owner, photo_jpeg(400, 300, orientation=1), "a.jpg", "image/jpeg")
    second = upload_ready(http, owner, photo_jpeg(300, 400, orientation=1), "b.jpg", "image/jpeg")
    foreign = upload_ready(http, other, photo_jpeg(100, 100, orientation=1), "c.jpg", "image/jpeg")
    refused = http.post("/api/v1/statuses", headers=owner.headers, data={"status": "x", "media_ids[]": [foreign["id"]]})
    assert refused.status_code == 422, refused.text
    posted = http.post(
        "/api/v1/statuses", headers=owner.headers, data={"status": "two", "media_ids[]": [second["id"], first["id"]]}
    )
    assert posted.status_code == 200, posted.text
    attachments = posted.json()["media_attachments"]
    assert [a["id"] for a in attachments] == [second["id"], first["id"]]
    assert attachments[0]["meta"]["original"]["size"] == "300x400" and attachments[0]["url"]
    assert download(http, attachments[1]["preview_url"]).headers["content-type"] == "image/jpeg"
    # Attached media leave the uploader's edit view and cannot be attached twice.
    assert http.get(f"/api/v1/media/{first['id']}", headers=owner.headers).status_code == 404
    again = http.post("/api/v1/statuses", headers=owner.headers, data={"status": "x", "media_ids[]": [first["id"]]})
    assert again.status_code == 422


async def test_attach_media_tx_rules(media: MediaBackend, make_user) -> None:
    http = media.http
    from ids import SnowflakeGenerator
    from services.errors import Unprocessable
    from services.media import MediaService

    owner = make_user()
    ready = upload_ready(http, owner, photo_jpeg(120, 90, orientation=1), "a.jpg", "image/jpeg")
    s = media.settings
    graph = GraphClient(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database)
    service = MediaService(s, graph, SnowflakeGenerator(1022))
    try:
        status_id = SnowflakeGenerator(1022).next_id()
        for ids, why in [
            ([int(ready["id"])] * 2, "twice"),
            ([int(ready["id"]), 42], "not found"),
            ([int(ready["id"])] * 11, "at most"),
        ]:
            with pytest.raises(Unprocessable, match=why):
                await graph.write_transaction(
                    lambda tx, ids=ids: service.attach_media_tx(tx, int(owner.id), status_id, ids)
                )
        await graph.write_transaction(
            lambda tx: service.attach_media_tx(tx, int(owner.id), status_id, [int(ready["id"])])
        )
        found = await service.attachments([int(ready["id"]), 42])
        assert list(found) == [int(ready["id"])]
        assert found[int(ready["id"])]["type"] == "image" and found[int(ready["id"])]["meta"]["small"]
    finally:
        await graph.close()


def test_mastodon_py_media_post_reaches_the_followers_feed(media: MediaBackend) -> None:
    http, base_url = media.http, media.base_url
    from mastodon import Mastodon

    from tests.conftest import unique_name
    from tests.test_feed import eventually

    client_id, secret = Mastodon.create_app("media-test", api_base_url=base_url, scopes=["read", "write", "follow"])
    apis = []
    for _ in range(2):
        name = unique_name("mm")
        api = Mastodon(client_id=client_id, client_secret=secret, api_base_url=base_url, version_check_mode="none")
        api.create_account(
            name, "a long password", f"{name}@example.org", agreement=True, scopes=["read", "write", "follow"]
        )
        apis.append(api)
    poster, follower = apis
    follower.timeline_home()
    follower.account_follow(poster.account_verify_credentials().id)
    media = poster.media_post(photo_jpeg(800, 600, orientation=1), mime_type="image/jpeg", description="red and blue")
    eventually(lambda: poster.media(media.id).url is not None, timeout=READY_PATIENCE)
    status = poster.status_post("look at this", media_ids=[media.id])
    assert [m.id for m in status.media_attachments] == [media.id]

    def attachment_in_feed() -> bool:
        return any(s.id == status.id and s.media_attachments for s in follower.timeline_home())

    eventually(attachment_in_feed)
    shown = next(s for s in follower.timeline_home() if s.id == status.id).media_attachments[0]
    assert shown.description == "red and blue"
    served = download(http, shown.url)
    assert open_image(served.content).size == (800, 600)
