"""Test harness of the HTTP API: a real uvicorn on 127.0.0.1 in a thread, the app on a local
store, status polling, and raw-socket helpers for what httpx will not do (stop mid-body, send
odd part headers)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from vidwatch.api.app import create_app
from vidwatch.api.context import ApiContext
from vidwatch.api.links import FileLinkSigner
from vidwatch.config import Settings
from vidwatch.r2.local import LocalStore
from vidwatch.r2.store import ObjectStore

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 15.0


@dataclass
class Served:
    server: uvicorn.Server
    thread: threading.Thread
    base_url: str
    port: int

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.base_url, **kwargs)


@contextlib.contextmanager
def serve(app, port: int = 0) -> Iterator[Served]:
    """``app`` on a real uvicorn, 127.0.0.1, ``port`` (default a free one); stopped at the
    end."""
    config = uvicorn.Config(
        app,
        host=LOOPBACK,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(server, thread, f"http://{LOOPBACK}:{port}", port)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def api_app(
    settings: Settings,
    store: ObjectStore,
    submit: Callable[[Any], Any] = lambda spec: None,
    **parts: Any,
) -> FastAPI:
    """The API app on ``store``, its health always ok, jobs handed to ``submit`` (dropped when
    not given); ``parts`` are the other ApiContext fields (signer, catalog, library...)."""
    return create_app(
        ApiContext(
            settings=settings, store=store, submit=submit, health=lambda: {"ok": True}, **parts
        )
    )


def local_api(
    settings: Settings, submit: Callable[[Any], Any], *, secret: bytes | None = None
) -> tuple[FastAPI, LocalStore]:
    """The API app on a LocalStore in LOCAL_STORE_DIR, its links signed with ``secret`` (else
    the settings' secret), jobs handed to ``submit``, its health always ok."""
    signer = FileLinkSigner.from_settings(settings, secret=secret)
    store = LocalStore(settings.local_store_dir, url_signer=signer)
    return api_app(settings, store, submit, signer=signer), store


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def poll_status(
    client: httpx.Client, job_id: str, states: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """Poll GET /status until the state is one of ``states``; fail on any non-200."""
    last: dict[str, Any] = {}

    def done() -> bool:
        nonlocal last
        resp = client.get(f"/status/{job_id}")
        assert resp.status_code == 200, resp.text
        last = resp.json()
        return last["state"] in states

    try:
        wait_for(done, timeout, f"job {job_id} to reach {states}", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status: {json.dumps(last)[:800]}") from None
    return last


# --- raw multipart ------------------------------------------------------------------------
BOUNDARY = "vidwatchTestBoundary7MA4YWxk"


def part_header(
    name: str, filename: bytes | None = None, content_type: str = "application/octet-stream"
) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'.encode()
    if filename is not None:
        head += b'; filename="' + filename + b'"'
        head += f"\r\nContent-Type: {content_type}".encode()
    return head + b"\r\n\r\n"


def multipart_body(
    file_bytes: bytes, filename: bytes | None = b"video.mp4", fields: dict[str, str] | None = None
) -> bytes:
    body = b""
    for name, value in (fields or {}).items():
        body += part_header(name) + value.encode() + b"\r\n"
    body += part_header("file", filename) + file_bytes + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def raw_connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {LOOPBACK}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of one HTTP/1.1 response with a Content-Length."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(":", 1)[1])
        for line in lines[1:]
        if line.lower().startswith("content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, json.loads(rest[:length] or b"{}")


def files_under(folder: Path) -> set[str]:
    """Every file below ``folder``, relative, with ``/``."""
    found = set()
    for dirpath, _, filenames in os.walk(folder):  # tolerates folders vanishing meanwhile
        rel = Path(dirpath).relative_to(folder)
        found.update((rel / name).as_posix() for name in filenames)
    return found
