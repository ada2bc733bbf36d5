"""The helper dies, hangs or closes: what each costs.

Every test here runs its own bridge so its counters start at zero. Killing uses real signals
on the real Node helper; ``SIGSTOP`` first freezes it so that requests are provably in flight
when ``SIGKILL`` lands.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vidwatch.toon_bridge import ToonBridge, ToonError, ToonUnavailable
from vidwatch.toon_bridge.samples import frame_documents


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def _fake_runtime(tmp_path: Path, script: str) -> Path:
    """A runtime folder whose helper is ``script`` (plain Node, no dependencies to install)."""
    (tmp_path / "convert_toon.mjs").write_text(script, encoding="utf-8")
    lock = {"name": "fake", "lockfileVersion": 3, "packages": {"": {"name": "fake"}}}
    (tmp_path / "package-lock.json").write_text(json.dumps(lock), encoding="utf-8")
    return tmp_path


_READY = (
    "process.stdout.write(JSON.stringify({id: 0, ok: true, ready: true, version: 'fake', "
    "node: process.version, pid: process.pid}) + '\\n');\n"
)


def test_kill_in_the_middle_of_a_job_costs_one_retry(node: str) -> None:
    docs = frame_documents(200, seed=21)
    with ToonBridge(node_binary=node, timeout_s=10) as bridge:
        expected = bridge.encode_many(docs)
        first_pid = bridge.pid
        assert first_pid is not None
        todo: queue.Queue[int] = queue.Queue()
        for i in range(len(docs)):
            todo.put(i)
        results: dict[int, str] = {}
        errors: list[BaseException] = []

        def writer() -> None:  # like the pipeline's frame writers
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = bridge.encode(docs[i])
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

        writers = [threading.Thread(target=writer) for _ in range(4)]
        for t in writers:
            t.start()
        _wait_for(lambda: len(results) >= 80)
        os.kill(first_pid, signal.SIGSTOP)
        _wait_for(lambda: bridge.stats["in_flight"] == 4)  # every writer is now waiting
        os.kill(first_pid, signal.SIGKILL)
        for t in writers:
            t.join(timeout=30)
        assert not errors
        assert results == dict(enumerate(expected))
        stats = bridge.stats
        assert stats["restarts"] == 1
        assert stats["retries"] == 4  # exactly the requests in flight, each once
        assert stats["errors"] == 0
        assert bridge.pid not in (None, first_pid)


def test_kill_during_one_batch_retries_the_batch_once(node: str) -> None:
    docs = frame_documents(60, seed=22)
    with ToonBridge(node_binary=node, timeout_s=10) as bridge:
        expected = bridge.encode_many(docs)
        pid = bridge.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        out: list[list[str]] = []
        batch = threading.Thread(target=lambda: out.append(bridge.encode_many(docs)))
        batch.start()
        _wait_for(lambda: bridge.stats["in_flight"] == len(docs))
        os.kill(pid, signal.SIGKILL)
        batch.join(timeout=30)
        assert out == [expected]
        assert bridge.stats["restarts"] == 1
        assert bridge.stats["retries"] == len(docs)


def test_helper_that_died_while_idle_is_restarted_without_a_retry(node: str) -> None:
    with ToonBridge(node_binary=node) as bridge:
        assert bridge.encode({"a": 1}) == "a: 1"
        pid = bridge.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: bridge.pid is None)  # the reader thread saw it go
        assert bridge.encode({"b": [1, 2]}) == "b[2]: 1,2"
        assert bridge.stats["restarts"] == 1
        assert bridge.stats["retries"] == 0


def test_second_death_of_the_same_request_raises(tmp_path: Path, node: str) -> None:
    # a helper that comes up, then dies on every request, saying why on stderr
    script = (
        _READY + "process.stdin.on('data', () => { console.error('fake helper gives up'); "
        "process.exit(3); });\n"
    )
    bridge = ToonBridge(node_binary=node, runtime_dir=_fake_runtime(tmp_path, script))
    with bridge, pytest.raises(ToonError) as info:
        bridge.encode({"a": 1})
    message = str(info.value)
    assert "failed twice" in message
    assert "exited with code 3" in message
    assert "fake helper gives up" in message  # node's stderr is in the error
    assert bridge.stats["retries"] == 1
    assert bridge.stats["restarts"] == 1


@pytest.mark.expect_error_logs("toon.helper.timeout")
def test_stuck_helper_is_killed_and_only_the_stuck_request_fails(node: str) -> None:
    with ToonBridge(node_binary=node, timeout_s=1.0) as bridge:
        pid = bridge.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # answers nothing from now on
        outcome: dict[str, object] = {}

        def call(name: str, doc: dict[str, int]) -> None:
            try:
                outcome[name] = bridge.encode(doc)
            except ToonError as exc:
                outcome[name] = exc

        started = time.monotonic()
        first = threading.Thread(target=call, args=("stuck", {"a": 1}))
        first.start()
        _wait_for(lambda: bridge.stats["in_flight"] == 1)
        second = threading.Thread(target=call, args=("queued", {"b": 2}))
        second.start()
        first.join(timeout=10)
        second.join(timeout=10)
        elapsed = time.monotonic() - started
        assert isinstance(outcome["stuck"], ToonError)
        assert "answered nothing for 1.0s" in str(outcome["stuck"])
        assert outcome["queued"] == "b: 2"  # retried on a fresh helper
        assert 0.9 < elapsed < 5
        stats = bridge.stats
        assert (stats["timeouts"], stats["restarts"], stats["retries"]) == (1, 1, 1)
        assert bridge.pid not in (None, pid)


def test_close_stops_the_helper_and_refuses_work_until_started_again(node: str) -> None:
    bridge = ToonBridge(node_binary=node)
    bridge.start()
    bridge.start()  # idempotent: same helper
    pid = bridge.pid
    assert pid is not None
    bridge.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ToonError, match="closed"):
        bridge.encode({"a": 1})
    bridge.close()  # idempotent
    with bridge:
        assert bridge.encode({"a": 1}) == "a: 1"
        assert bridge.pid != pid


def test_helper_that_cannot_start_reports_its_stderr(tmp_path: Path, node: str) -> None:
    script = "console.error('boom at start'); process.exit(2);\n"
    bridge = ToonBridge(node_binary=node, runtime_dir=_fake_runtime(tmp_path, script))
    with pytest.raises(ToonUnavailable, match="boom at start") as info:
        bridge.start()
    assert "TOON_ENABLED=false" in str(info.value)
    assert bridge.pid is None
