"""The S3 object store as a deployment sees it: an acknowledged upload survives the store's crash, and a
deployment of several nodes does not start without the shared URL secret.

The store is SeaweedFS, started by the project's launcher (``seaweedfs_media`` in conftest); its crash is a
SIGKILL sent to the pid in its pid file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from pathlib import Path

import pytest

from config import Settings
from launcher import ManagedProcess, ProcessIdentity, ServiceStartError, free_port
from media.store import object_store, original_key
from media.urls import MissingSecret, UrlSigner
from stack import Stack
from tests.conftest import MediaBackend, UserFactory
from tests.test_media import download, media_count, photo_jpeg, upload, upload_ready
from tests.waiting import wait_for


def _kill_store(media: MediaBackend) -> None:
    identity = ProcessIdentity.read(media.settings.state_dir / "seaweedfs.pid")
    assert identity is not None and identity.alive()
    assert identity.signal(signal.SIGKILL)
    wait_for(identity.alive, lambda alive: not alive, "weed to die", 30)


def test_an_acknowledged_upload_survives_a_crash_of_the_store(
    seaweedfs_media: MediaBackend, make_user: UserFactory
) -> None:
    media, http = seaweedfs_media, seaweedfs_media.http
    user = make_user()
    data = photo_jpeg(700, 500, orientation=1)
    entity = upload_ready(http, user, data, "p.jpg", "image/jpeg")
    served = {variant["url"]: download(http, variant["url"]).content for variant in entity["variants"]}
    _kill_store(media)
    try:
        # Down: nothing is served, and an upload is refused, not acknowledged and lost.
        assert http.get(entity["url"]).status_code == 503
        refused = upload(http, make_user(), photo_jpeg(300, 200), "q.jpg", "image/jpeg")
        assert refused.status_code == 503 and refused.json()["error"] and refused.headers["retry-after"]
    finally:
        media.restart()
    for url, body in served.items():
        assert download(http, url).content == body
    stored = asyncio.run(media.store().get(original_key(hashlib.sha256(data).hexdigest())))
    assert stored == data
    assert media_count(media, user.id) == 1


def test_several_nodes_refuse_to_start_without_a_shared_secret(tmp_path: Path) -> None:
    for label, settings in [
        ("s3", {"media_store_url": "s3://bucket?endpoint=http://127.0.0.1:1&region=us-east-1"}),
        ("seaweedfs", {"media_store": "seaweedfs"}),
        ("cluster", {"ray_address": "10.1.2.3:6379"}),
    ]:
        stack = Stack.isolated(tmp_path / label, label, {}, media_url_secret="", **settings)
        with pytest.raises(ServiceStartError, match="MEDIA_URL_SECRET is not set"):
            stack.start_services()
        assert not stack.started and not (tmp_path / label / "seaweedfs.pid").exists()
        with pytest.raises(MissingSecret):
            UrlSigner(stack.settings)
        stack.stop()
    # One machine keeps its secret in the state folder; a shared secret is taken as given.
    assert not Settings(ray_address="127.0.0.1:6379", media_url_secret="").multi_node
    assert not Settings(ray_address="", media_url_secret="").multi_node
    shared = Settings(state_dir=tmp_path / "shared", media_store="seaweedfs", media_url_secret="s3cret")
    assert UrlSigner(shared).secret == b"s3cret"


def test_the_stack_starts_seaweedfs_reuses_a_running_one_and_stops_only_its_own(tmp_path: Path) -> None:
    """What `MEDIA_STORE=seaweedfs make run` does, without the rest of the stack (Redis and graph "external")."""
    port = free_port()
    settings = {
        "media_store": "seaweedfs", "media_store_url": "", "media_url_secret": "s3cret", "seaweedfs_s3_port": port,
        "redis_url": "redis://127.0.0.1:1/0", "neo4j_uri": "bolt://127.0.0.1:1",
    }  # fmt: skip
    saved = dict(os.environ)  # a stack exports its settings; this one's must not leak into other tests
    first, second = Stack(Settings(state_dir=tmp_path, **settings)), Stack(Settings(state_dir=tmp_path, **settings))
    try:
        first.start_services()
        first._services_started()
        assert first.settings.media_store_url == f"s3://raygram-media?endpoint=http://127.0.0.1:{port}&region=us-east-1"
        assert os.environ["MEDIA_STORE_URL"] == first.settings.media_store_url  # what every Ray process reads
        store = object_store(first.settings)
        asyncio.run(store.put_bytes("v1/ab/abc/t.jpg", b"bytes"))
        weed = ManagedProcess("seaweedfs", tmp_path / "seaweedfs.pid", tmp_path / "seaweedfs.log")
        pid = weed.running_pid()
        assert pid is not None
        second.start_services()  # a second `raygram up` on the same state folder reuses it
        second._services_started()
        assert not second.started and weed.running_pid() == pid
        assert asyncio.run(object_store(second.settings).get("v1/ab/abc/t.jpg")) == b"bytes"
        second.stop()
        assert weed.running_pid() == pid  # not its own: left running
    finally:
        first.stop()
        os.environ.clear()
        os.environ.update(saved)
    assert weed.running_pid() is None
