"""A real HTTP receiver on 127.0.0.1 for webhook tests, and the spec's own signature check.

``Receiver`` answers each path from a script (``[500, 500, 200]``: the first two requests
get 500, then 200 for good; ``"slow"`` waits up to 60 s before answering; ``"redirect"``
answers 302 to ``/redirected``) and records every request. ``spec_verify`` is the check of
Standard Webhooks 1.0 written out from the spec, independent of the package the sender uses.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_S = 60.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(hashlib.sha256(b"vidwatch test").digest()).decode()


def spec_verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance_s: int = 300):
    """Standard Webhooks 1.0, as a receiver implements it: the HMAC-SHA256 of
    ``<webhook-id>.<webhook-timestamp>.<body>`` under the base64-decoded secret, compared in
    constant time with each ``v1,`` signature; a timestamp within 5 minutes of now."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]
    if abs(time.time() - int(ts)) > tolerance_s:
        raise AssertionError(f"timestamp {ts} too far from now")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    for sig in sigs.split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(base64.b64decode(value), expected):
            return json.loads(body)
    raise AssertionError("no matching v1 signature")


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    def __init__(self, scripts: dict[str, list[Any]] | None = None, port: int = 0) -> None:
        self.scripts = {k: list(v) for k, v in (scripts or {}).items()}
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                action = receiver._next(self.path)
                if action == "slow":
                    receiver.closing.wait(SLOW_S)
                    action = 200
                status = 302 if action == "redirect" else int(action)
                with receiver.lock:
                    receiver.hits.append(
                        Hit(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, status
                        )
                    )
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    if action == "redirect":
                        self.send_header("Location", "/redirected")
                    self.send_header("content-length", "0")
                    self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _next(self, path: str) -> Any:
        with self.lock:
            script = self.scripts.get(path, [200])
            return script.pop(0) if len(script) > 1 else script[0]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def at(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def wait(self, path: str, count: int, timeout_s: float = 20.0) -> list[Hit]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hits = self.at(path)
            if len(hits) >= count:
                return hits
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.at(path))} requests, wanted {count}")


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BlackHole:
    """An endpoint that never completes a connection: a listener whose one-slot accept
    queue is kept full, so further handshakes go unanswered (like a host that is down)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                filler.connect(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()
