"""Security details: media caching tied to the signed URL, deleted posts' media, process identity for pid files.

The media tests run once per object store (the ``media`` fixture: the local disk, then SeaweedFS over S3).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from launcher import ManagedProcess, ProcessIdentity, exclusive, free_port
from media.urls import UrlSigner
from tests.conftest import MediaBackend, User, UserFactory
from tests.test_media import download, photo_jpeg, upload_ready

ROOT = Path(__file__).resolve().parent.parent


def media_post(http: httpx.Client, user: User, visibility: str) -> dict:
    media = upload_ready(http, user, photo_jpeg(600, 400, orientation=1), "p.jpg", "image/jpeg")
    response = http.post(
        "/api/v1/statuses",
        headers=user.headers,
        data={"status": "look", "media_ids[]": media["id"], "visibility": visibility},
    )
    assert response.status_code == 200, response.text
    return response.json()


def cache_control(response: httpx.Response) -> tuple[str, int]:
    """(``public`` or ``private``, max-age) of an immutable media response."""
    scope, max_age, immutable = response.headers["cache-control"].split(", ")
    assert immutable == "immutable"
    return scope, int(max_age.removeprefix("max-age="))


def expiry(url: str) -> int:
    return int(httpx.URL(url).params["e"])


# -- media ------------------------------------------------------------------------------------------


def test_media_is_cached_no_longer_than_its_signed_url_works(media: MediaBackend, make_user: UserFactory) -> None:
    http = media.http
    author = make_user()
    post = media_post(http, author, "public")
    for url in (post["media_attachments"][0]["url"], post["media_attachments"][0]["preview_url"]):
        before = time.time()
        scope, max_age = cache_control(download(http, url))
        assert scope == "public"
        assert expiry(url) - time.time() - 1 <= max_age <= expiry(url) - before  # until the expiry, not a year
    not_modified = http.get(url, headers={"If-None-Match": download(http, url).headers["etag"]})
    assert not_modified.status_code == 304 and cache_control(not_modified)[0] == "public"


def test_media_of_non_public_posts_is_private_to_the_browser(media: MediaBackend, make_user: UserFactory) -> None:
    http = media.http
    author = make_user()
    for visibility, scope in (("unlisted", "public"), ("private", "private")):
        post = media_post(http, author, visibility)
        assert cache_control(download(http, post["media_attachments"][0]["url"]))[0] == scope, visibility


def test_a_deleted_posts_media_is_not_served_even_with_a_valid_url(media: MediaBackend, make_user: UserFactory) -> None:
    http = media.http
    author = make_user()
    post = media_post(http, author, "public")
    urls = [post["media_attachments"][0]["url"], post["media_attachments"][0]["preview_url"]]
    assert all(download(http, url).status_code == 200 for url in urls)
    assert http.delete(f"/api/v1/statuses/{post['id']}", headers=author.headers).status_code == 200
    for url in urls:
        assert expiry(url) > time.time()  # the URL itself is still valid
        gone = http.get(url)
        assert gone.status_code == 404 and gone.json()["error"]


def test_a_signature_is_for_one_upload(media: MediaBackend, make_user: UserFactory) -> None:
    """Variants are stored by content; a URL names its upload, and another upload's id breaks the signature."""
    http = media.http
    author = make_user()
    first, second = media_post(http, author, "public"), media_post(http, author, "private")
    url = httpx.URL(first["media_attachments"][0]["url"])
    other = second["media_attachments"][0]["id"]
    assert http.get(str(url.copy_with(params={**dict(url.params), "m": other}))).status_code == 403
    key = url.path.partition("/media/")[2]
    assert http.get(UrlSigner(media.settings).url(key, int(other))).status_code == 404  # not that upload's file


# -- pid files and process identity ---------------------------------------------------------------


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """A live process raygram did not start, whose pid a stale pid file may happen to name."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def raygram(state_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The ``raygram`` command as a user runs it, on its own state folder and free ports."""
    env = {
        **os.environ,
        "STATE_DIR": str(state_dir),
        "REDIS_URL": "",
        "NEO4J_URI": "",
        "REDIS_PORT": str(free_port()),
        "GRAPH_BOLT_PORT": str(free_port()),
        "HTTP_PORT": str(free_port()),
    }
    code = "import sys, cli; sys.exit(cli.main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_a_stale_pid_file_naming_another_process_is_neither_running_nor_killed(
    tmp_path: Path, bystander: subprocess.Popen
) -> None:
    started = ProcessIdentity.of(bystander.pid)
    assert started is not None
    (tmp_path / "redis.pid").write_text(f"{bystander.pid}\n")  # an older, pid-only pid file
    (tmp_path / "graph.pid").write_text(f"{bystander.pid} 1\n")  # the pid was reused: another start time
    (tmp_path / "stack.pid").write_text(f"{bystander.pid} 1\n")
    for name in ("redis", "graph"):
        stale = ManagedProcess(name, tmp_path / f"{name}.pid", tmp_path / f"{name}.log")
        assert stale.running_pid() is None
        stale.stop(timeout=1)
        assert bystander.poll() is None and started.alive()
    (tmp_path / "graph.pid").write_text(f"{bystander.pid} 1\n")
    down = raygram(tmp_path, "down")
    assert down.returncode == 0 and "was not running" in down.stdout, down.stdout + down.stderr
    assert bystander.poll() is None and started.alive()


def test_a_pid_file_naming_our_process_stops_it(tmp_path: Path) -> None:
    managed = ManagedProcess("sleeper", tmp_path / "sleeper.pid", tmp_path / "sleeper.log")
    pid = managed.start(["sleep", "60"])
    assert managed.running_pid() == pid
    managed.stop(timeout=5)
    assert managed.running_pid() is None and not (tmp_path / "sleeper.pid").exists()
    assert ProcessIdentity.of(pid) is None  # gone (and reaped), not merely unlisted


def test_raygram_up_twice_does_not_start_twice(tmp_path: Path, bystander: subprocess.Popen) -> None:
    """While one ``raygram up`` holds the state folder, another refuses at once and starts nothing, even
    before the first has written its pid file (it is still starting its services)."""
    with exclusive(tmp_path / "stack.lock") as lock:
        assert lock is not None
        starting = raygram(tmp_path, "up")
        ProcessIdentity.current().write(tmp_path / "stack.pid")
        running = raygram(tmp_path, "up")
    assert starting.returncode == 1 and "already running for" in starting.stderr, starting.stderr
    assert running.returncode == 1 and f"already running (pid {os.getpid()})" in running.stderr, running.stderr
    assert not (tmp_path / "redis.pid").exists() and not (tmp_path / "graph.pid").exists()
    # A stale pid file does not make a stack running: only the lock does, and nobody holds it now.
    (tmp_path / "stack.pid").write_text(f"{bystander.pid} 1\n")
    with exclusive(tmp_path / "stack.lock") as lock:
        assert lock is not None
