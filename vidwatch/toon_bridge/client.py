"""Python client of the long-lived TOON helper (``runtime/convert_toon.mjs``).

One Node process, started once, converts every document of a job (or of the whole daemon):
spawning Node per frame costs tens of milliseconds, a request to the running helper well under
one. The helper speaks one JSON object per line each way (see the header of
``convert_toon.mjs``); requests carry ids and the answers are matched to them by id.

Threads. Any number of threads may call :meth:`ToonBridge.encode`, :meth:`~ToonBridge.encode_many`
and :meth:`~ToonBridge.decode` on one bridge. Each call registers its requests, writes their lines
in one write (a write lock keeps lines whole), and waits on its own requests; one reader thread
per helper matches answers to requests; a watchdog thread per helper enforces the timeout.

Failure handling:

- *Helper died* (crash, OOM, ``SIGKILL``) while requests were in flight: the reader sees its
  stdout close, every request in flight on it is marked as died, and each caller restarts the
  helper (once, whoever comes first) and sends its requests again. A request that dies a second
  time raises :class:`ToonError`. A helper that died while idle is restarted by the next request,
  which costs no retry.
- *Helper stuck*: when requests are waiting and the helper has answered nothing for
  ``timeout_s`` seconds, the watchdog kills it. The helper answers in order, so the oldest
  request in flight is the one it was stuck on: that request raises :class:`ToonError` and is
  **not** retried (the same document would likely hang the next helper too). The other requests
  in flight were only queued behind it: they are retried once on a fresh helper.
- *A document the library rejects*: :class:`ToonError` for that call, no retry, helper keeps
  running. Values that are not strict JSON (``NaN``, ``Infinity``, non-JSON types) are refused
  in Python before sending, since TOON cannot carry them back exactly.

Exactness (what a round trip through this bridge can and cannot preserve) is set by JavaScript
numbers: integers beyond 2**53 are rounded by ``JSON.parse`` before TOON sees them, ``-0``
becomes ``0``, and an integral float such as ``2.0`` comes back as the integer ``2`` (the same
JSON number). Frame documents hold rounded floats and small integers, which round-trip exactly;
:func:`vidwatch.toon_bridge.equivalence.json_difference` compares accordingly.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from vidwatch.errors import VidwatchError
from vidwatch.toon_bridge.node_runtime import (
    LIBRARY,
    RUNTIME_DIR,
    SCRIPT_NAME,
    TURN_OFF,
    ToonUnavailable,
    ensure_runtime,
    find_node,
    pinned_version,
    tail,
)

log = structlog.get_logger("vidwatch.toon")

_STDERR_LINES = 40

__all__ = ["RUNTIME_DIR", "ToonBridge", "ToonError", "ToonUnavailable", "pinned_version"]


class ToonError(VidwatchError):
    """A document could not be converted, the helper timed out, or it failed twice."""


class _Request:
    __slots__ = ("attempts", "detail", "event", "id", "line", "outcome", "value")

    def __init__(self, req_id: int, line: bytes) -> None:
        self.id = req_id
        self.line = line
        self.attempts = 0
        self.event = threading.Event()
        self.outcome = ""  # ok | error | died | timeout | closed
        self.value: Any = None
        self.detail = ""

    def finish(self, outcome: str, value: Any = None, detail: str = "") -> None:
        self.outcome, self.value, self.detail = outcome, value, detail
        self.event.set()

    def reset(self) -> None:
        self.event.clear()
        self.outcome, self.value, self.detail = "", None, ""


class _Helper:
    """One running ``node convert_toon.mjs`` and its bookkeeping (guarded by the bridge lock)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.alive = True
        self.pending: dict[int, _Request] = {}  # insertion order = the order the helper answers
        self.last_progress = time.monotonic()
        self.ready = threading.Event()
        self.gone = threading.Event()
        self.version: str | None = None
        self.node_version: str | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self.write_lock = threading.Lock()
        self.exit_reason: str | None = None  # "timeout" | "closed" | None (died by itself)
        self.timed_out_id: int | None = None
        self.threads: list[threading.Thread] = []

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_tail).strip()


class ToonBridge:
    """JSON -> TOON through one long-lived Node helper running ``@toon-format/toon``.

    ``timeout_s`` bounds how long the helper may go without answering while requests wait
    (and how long it may take to start). ``npm_binary`` is used only when the runtime's
    ``node_modules`` is missing or out of date.
    """

    def __init__(
        self,
        node_binary: str = "node",
        timeout_s: float = 30.0,
        runtime_dir: Path | None = None,
        *,
        npm_binary: str = "npm",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.node_binary = node_binary
        self.npm_binary = npm_binary
        self.timeout_s = float(timeout_s)
        self.runtime_dir = Path(runtime_dir) if runtime_dir is not None else RUNTIME_DIR
        self._lock = threading.Lock()  # helper.pending / helper.alive / counters
        self._start_lock = threading.RLock()  # spawning, restarting, closing
        self._helper: _Helper | None = None
        self._closed = False
        self._ids = itertools.count(1)
        self._node_path: str | None = None
        self._counts = collections.Counter[str]()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Install the runtime's dependencies if missing, then spawn the helper. Idempotent.

        Raises :class:`ToonUnavailable` when Node (or, for the first install, npm) is missing,
        ``npm ci`` fails, or the helper does not come up.
        """
        with self._start_lock:
            self._closed = False
            if self._helper is not None and self._helper.alive:
                return
            self._helper = self._spawn()

    def close(self) -> None:
        """Stop the helper (stdin closed, then killed if it lingers). Idempotent."""
        with self._start_lock:
            self._closed = True
            helper, self._helper = self._helper, None
            if helper is None:
                return
            helper.exit_reason = "closed"
            # Closing stdin lets the helper answer what it already has, then exit. A writer
            # stuck on a full pipe (helper hung) holds the write lock: then kill instead.
            if helper.write_lock.acquire(timeout=2):
                try:
                    with contextlib.suppress(OSError, ValueError):
                        helper.proc.stdin.close()  # type: ignore[union-attr]
                finally:
                    helper.write_lock.release()
            try:
                helper.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                helper.proc.kill()
                helper.proc.wait()
            for thread in helper.threads:
                thread.join(timeout=5)
            for stream in (helper.proc.stdin, helper.proc.stdout, helper.proc.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.close()  # type: ignore[union-attr]
            log.info("toon.helper.closed", pid=helper.pid, returncode=helper.proc.returncode)

    def __enter__(self) -> ToonBridge:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def version(self) -> str:
        """The ``@toon-format/toon`` version in use, for provenance.

        The version the running helper reported; before start, the installed one; before
        install, the one package.json pins.
        """
        helper = self._helper
        if helper is not None and helper.version:
            return helper.version
        installed = self.runtime_dir / "node_modules" / LIBRARY / "package.json"
        try:
            return str(json.loads(installed.read_text(encoding="utf-8"))["version"])
        except (OSError, ValueError, KeyError):
            return pinned_version(self.runtime_dir)

    @property
    def pid(self) -> int | None:
        """Process id of the running helper, if any."""
        helper = self._helper
        return helper.pid if helper is not None and helper.alive else None

    @property
    def stats(self) -> dict[str, int]:
        """Counters: requests, retries, restarts, timeouts, errors; and requests in flight."""
        with self._lock:
            out = {k: self._counts[k] for k in ("requests", "retries", "restarts", "timeouts")}
            out["errors"] = self._counts["errors"]
            helper = self._helper
            out["in_flight"] = len(helper.pending) if helper is not None else 0
        return out

    # ----------------------------------------------------------------- conversions

    def encode(self, doc: Any) -> str:
        """One JSON-compatible value -> its TOON text (library defaults)."""
        return self.encode_many([doc])[0]

    def encode_many(self, docs: list[Any]) -> list[str]:
        """Many values in one batch; the answers come back in the order of ``docs``."""
        lines = []
        for i, doc in enumerate(docs):
            lines.append(self._request_line("encode", "doc", doc, i))
        return self._run(lines)

    def decode(self, text: str) -> Any:
        """TOON text -> JSON value, with the library's ``decode()`` (strict mode)."""
        if not isinstance(text, str):
            raise TypeError(f"decode() takes TOON text (str), not {type(text).__name__}")
        return self._run([self._request_line("decode", "text", text, 0)])[0]

    def ping(self) -> bool:
        """Round trip to the helper (starting it if needed)."""
        reply: str = self._run([self._request_line("ping", "", None, 0)])[0]
        return reply == "pong"

    # ----------------------------------------------------------------- internals

    def _request_line(self, op: str, field: str, value: Any, index: int) -> tuple[int, bytes]:
        req_id = next(self._ids)
        body: dict[str, Any] = {"id": req_id, "op": op}
        if field:
            body[field] = value
        try:
            # ASCII-only output: the line can hold no raw line separators, and JSON.parse reads it
            line = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ToonError(
                f"document {index} is not strict JSON ({exc}); NaN, Infinity and non-JSON types "
                "cannot be written as TOON and read back"
            ) from exc
        return req_id, line.encode("ascii") + b"\n"

    def _run(self, lines: list[tuple[int, bytes]]) -> list[Any]:
        requests = [_Request(req_id, line) for req_id, line in lines]
        if not requests:
            return []
        with self._lock:
            self._counts["requests"] += len(requests)
        todo = requests
        while todo:
            self._submit(todo)
            died: list[_Request] = []
            for req in todo:
                self._wait(req)
                if req.outcome == "ok":
                    continue
                if req.outcome == "died" and req.attempts < 2:
                    died.append(req)
                    continue
                self._raise_for(req)
            if died:
                with self._lock:
                    self._counts["retries"] += len(died)
                log.warning("toon.request.retry", count=len(died), reason=died[0].detail)
            todo = died
        return [req.value for req in requests]

    def _raise_for(self, req: _Request) -> None:
        with self._lock:
            self._counts["errors"] += 1
        if req.outcome == "error":
            raise ToonError(f"{LIBRARY} could not convert the document: {req.detail}")
        if req.outcome == "timeout":
            raise ToonError(req.detail)
        if req.outcome == "closed":
            raise ToonError("the TOON bridge was closed while the request was in flight")
        raise ToonError(f"the TOON helper failed twice on this request; last: {req.detail}")

    def _live_helper(self) -> _Helper:
        with self._start_lock:
            if self._closed:
                raise ToonError("the TOON bridge is closed")
            helper = self._helper
            if helper is None:
                self._helper = helper = self._spawn()
            elif not helper.alive:
                try:
                    self._helper = helper = self._spawn()
                except ToonUnavailable as exc:
                    raise ToonError(f"could not restart the TOON helper: {exc}") from exc
                with self._lock:
                    self._counts["restarts"] += 1
                log.warning("toon.helper.restarted", pid=helper.pid)
            return helper

    def _submit(self, requests: list[_Request]) -> None:
        while True:
            helper = self._live_helper()
            with self._lock:
                if not helper.alive:
                    continue  # died between the check and now: restart
                if not helper.pending:
                    helper.last_progress = time.monotonic()
                for req in requests:
                    req.reset()
                    req.attempts += 1
                    helper.pending[req.id] = req
            break
        payload = b"".join(req.line for req in requests)
        try:
            with helper.write_lock:
                helper.proc.stdin.write(payload)  # type: ignore[union-attr]
                helper.proc.stdin.flush()  # type: ignore[union-attr]
        except (OSError, ValueError):
            # Broken pipe: the helper is gone or going. Make sure it is, and the reader
            # thread fails the requests in flight, which are then retried.
            with contextlib.suppress(OSError):
                helper.proc.kill()

    def _wait(self, req: _Request) -> None:
        # The watchdog resolves a request whose helper stalls; this bound only guards the
        # watchdog itself.
        if req.event.wait(self.timeout_s * 2 + 30):
            return
        helper = self._helper
        if helper is not None:
            with contextlib.suppress(OSError):
                helper.proc.kill()
        limit = self.timeout_s * 2 + 30
        req.finish("timeout", detail=f"no answer from the TOON helper in {limit}s")

    def _spawn(self) -> _Helper:
        node = self._node_path or find_node(self.node_binary)
        ensure_runtime(self.runtime_dir, node, self.npm_binary)
        self._node_path = node
        script = self.runtime_dir / SCRIPT_NAME
        try:
            proc = subprocess.Popen(
                [node, str(script)],
                cwd=self.runtime_dir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # own session: a Ctrl-C to the daemon's terminal does not kill the helper
                # under the pipeline; it exits when its stdin closes with us
                start_new_session=True,
            )
        except OSError as exc:
            raise ToonUnavailable(f"cannot start {node} {script}: {exc}; {TURN_OFF}") from exc
        helper = _Helper(proc)
        for target, name in (
            (self._read_stdout, "stdout"),
            (self._read_stderr, "stderr"),
            (self._watchdog, "watchdog"),
        ):
            thread = threading.Thread(
                target=target, args=(helper,), name=f"toon-{name}-{helper.pid}", daemon=True
            )
            helper.threads.append(thread)
            thread.start()
        if not helper.ready.wait(self.timeout_s) or helper.version is None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            helper.gone.wait(5)
            raise ToonUnavailable(
                f"the TOON helper did not start (exit {proc.returncode}); node stderr: "
                f"{tail(helper.stderr_text()) or '(empty)'}; run `npm ci` in "
                f"{self.runtime_dir} or {TURN_OFF}."
            )
        log.info(
            "toon.helper.started",
            pid=helper.pid,
            version=helper.version,
            node=helper.node_version,
        )
        return helper

    def _read_stdout(self, helper: _Helper) -> None:
        stream = helper.proc.stdout
        assert stream is not None
        try:
            for raw in iter(stream.readline, b""):
                try:
                    msg = json.loads(raw)
                except ValueError:
                    log.warning("toon.helper.bad_line", pid=helper.pid, line=raw[:200])
                    continue
                if msg.get("ready"):
                    helper.version = msg.get("version")
                    helper.node_version = msg.get("node")
                    helper.ready.set()
                    continue
                with self._lock:
                    req = helper.pending.pop(msg.get("id"), None)
                    helper.last_progress = time.monotonic()
                if req is None:
                    log.warning("toon.helper.unmatched_answer", pid=helper.pid, answer=msg)
                elif msg.get("ok"):
                    req.finish("ok", msg.get("result"))
                else:
                    req.finish("error", detail=str(msg.get("error")))
        except (OSError, ValueError):
            pass
        finally:
            self._helper_gone(helper)

    def _read_stderr(self, helper: _Helper) -> None:
        stream = helper.proc.stderr
        assert stream is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in iter(stream.readline, b""):
                helper.stderr_tail.append(raw.decode("utf-8", "replace").rstrip())

    def _watchdog(self, helper: _Helper) -> None:
        interval = min(0.25, self.timeout_s / 4)
        while not helper.gone.wait(interval):
            with self._lock:
                if not helper.alive or not helper.pending:
                    continue
                stalled = time.monotonic() - helper.last_progress
                if stalled <= self.timeout_s:
                    continue
                helper.exit_reason = "timeout"
                helper.timed_out_id = next(iter(helper.pending))
                self._counts["timeouts"] += 1
                pending = len(helper.pending)
            log.error(
                "toon.helper.timeout",
                pid=helper.pid,
                stalled_s=round(stalled, 2),
                timeout_s=self.timeout_s,
                in_flight=pending,
            )
            with contextlib.suppress(OSError):
                helper.proc.kill()
            return

    def _helper_gone(self, helper: _Helper) -> None:
        """Stdout closed: reap the process and fail what was in flight on it."""
        try:
            returncode = helper.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            helper.proc.kill()
            returncode = helper.proc.wait()
        for thread in helper.threads:
            if thread.name.startswith("toon-stderr") and thread is not threading.current_thread():
                thread.join(timeout=2)
        stderr = tail(helper.stderr_text(), 1000)
        with self._lock:
            helper.alive = False
            pending = list(helper.pending.values())
            helper.pending.clear()
        helper.gone.set()
        helper.ready.set()
        reason = helper.exit_reason
        if reason == "timeout":
            detail = f"the TOON helper answered nothing for {self.timeout_s}s and was killed" + (
                f"; node stderr: {stderr}" if stderr else ""
            )
        else:
            detail = f"the TOON helper (pid {helper.pid}) exited with code {returncode}" + (
                f"; node stderr: {stderr}" if stderr else ""
            )
        for req in pending:
            if reason == "closed":
                req.finish("closed", detail=detail)
            elif reason == "timeout" and req.id == helper.timed_out_id:
                req.finish("timeout", detail=detail)
            else:
                req.finish("died", detail=detail)
        if reason != "closed" and helper.version is not None:
            log.warning(
                "toon.helper.died",
                pid=helper.pid,
                returncode=returncode,
                reason=reason or "exited",
                in_flight=len(pending),
                stderr=stderr or None,
            )
