"""The inbox in-process: the settle rule with fixed times, names that are never taken, the
move into staging, and what becomes of a file that cannot be taken. The daemon tests drop
real videos into a real daemon's inbox."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from vidwatch.daemon.intake_inbox import (
    FileSig,
    InboxIntake,
    Settler,
    SourceUnreadable,
    is_candidate_name,
    stage_inbox_file,
)
from vidwatch.errors import QueueFull
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

from .helpers import local_settings


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("holiday.mp4", True),
        ("clip.MOV", True),
        ("no_extension", True),
        (".hidden.mp4", False),
        ("upload.mp4.part", False),
        ("x.partial", False),
        ("x.TMP", False),
        ("x.mp4.crdownload", False),
        ("x.mp4~", False),
        ("x.mp4.error.txt", False),
    ],
)
def test_candidate_names(name, taken):
    assert is_candidate_name(name) is taken


def test_settler_needs_an_unchanged_signature_for_the_settle_time():
    settler = Settler(2.0)
    a, b = FileSig(100, 1, 7), FileSig(200, 2, 7)
    assert not settler.observe("f", a, now=0.0)  # first look
    assert not settler.observe("f", a, now=1.9)
    assert not settler.observe("f", b, now=2.5)  # it grew: start again
    assert not settler.observe("f", b, now=4.4)
    assert settler.observe("f", b, now=4.5)
    assert not settler.observe("f", None, now=5.0)  # gone
    assert not settler.observe("f", b, now=9.0)  # back: a first look again


def test_settler_with_zero_settle_still_wants_two_looks():
    settler = Settler(0.0)
    sig = FileSig(1, 1, 1)
    assert not settler.observe("f", sig, now=0.0)
    assert settler.observe("f", sig, now=0.0)


def _settings(tmp_path: Path, **extra):
    return local_settings(
        tmp_path, {"INBOX_DIR": str(tmp_path / "inbox"), "INBOX_SETTLE_S": "0.2"}, **extra
    )


class Accept:
    def __init__(self, room: int = 100) -> None:
        self.specs = []
        self.room = room

    def submit(self, spec) -> bool:
        if len(self.specs) >= self.room:
            raise QueueFull("full")
        self.specs.append(spec)
        return True

    def has_room(self) -> bool:
        return len(self.specs) < self.room


def _intake(settings, accept: Accept, **kw) -> InboxIntake:
    store = LocalStore(settings.local_store_dir)
    return InboxIntake(settings, store, submit=accept.submit, has_room=accept.has_room, **kw)


def test_files_present_at_start_become_queued_jobs_and_others_stay(tmp_path):
    settings = _settings(tmp_path)
    inbox = Path(settings.inbox_dir)
    inbox.mkdir()
    (inbox / "a.mp4").write_bytes(b"a" * 1000)
    (inbox / "b.webm").write_bytes(b"b" * 10)
    (inbox / ".c.mp4").write_bytes(b"hidden")
    (inbox / "d.mp4.part").write_bytes(b"partial")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "e.mp4").write_bytes(b"in a sub-folder")
    os.symlink(inbox / "a.mp4", inbox / "link.mp4")
    accept = Accept()
    intake = _intake(settings, accept)
    assert intake.run_once(timeout_s=5) == 2
    by_name = {s.filename: s for s in accept.specs}
    assert set(by_name) == {"a.mp4", "b.webm"}
    for name, spec in by_name.items():
        assert spec.origin == "inbox"
        assert spec.staged_source == (
            Path(settings.temp_media_dir)
            / spec.job_id
            / "input"
            / f"source.{name.rsplit('.', 1)[1]}"
        )
        assert spec.staged_source.is_file() and not (inbox / name).exists()
        status = json.loads(
            (Path(settings.local_store_dir) / keys.status_key(spec.job_id)).read_text()
        )
        assert status["state"] == "queued" and status["source"]["origin"] == "inbox"
        assert status["source"]["filename"] == name
    assert by_name["a.mp4"].staged_source.read_bytes() == b"a" * 1000
    left = sorted(p.name for p in inbox.iterdir())
    assert left == [".c.mp4", "d.mp4.part", "link.mp4", "sub"]


def test_a_file_still_growing_is_not_taken(tmp_path):
    settings = _settings(tmp_path, INBOX_SETTLE_S=0.5)
    inbox = Path(settings.inbox_dir)
    inbox.mkdir()
    accept = Accept()
    intake = _intake(settings, accept)
    path = inbox / "growing.mp4"
    stop = threading.Event()

    def grow() -> None:
        with open(path, "ab") as fh:
            while not stop.is_set():
                fh.write(b"x" * 100)
                fh.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=grow)
    path.write_bytes(b"")
    writer.start()
    try:
        assert intake.run_once(timeout_s=2) == 0
    finally:
        stop.set()
        writer.join()
    assert path.exists() and not accept.specs
    final = path.read_bytes()
    assert intake.run_once(timeout_s=3) == 1  # once it stopped growing
    assert accept.specs[0].staged_source.read_bytes() == final


def test_an_unreadable_file_goes_to_failed_with_the_reason(tmp_path):
    settings = _settings(tmp_path)
    inbox = Path(settings.inbox_dir)
    inbox.mkdir()
    (inbox / "broken.mp4").write_bytes(b"x" * 10)

    def unreadable(src: Path, dest: Path) -> None:
        raise SourceUnreadable("read error: Input/output error")

    accept = Accept()
    intake = _intake(settings, accept, stage=unreadable)
    assert intake.run_once(timeout_s=3) == 0
    assert not accept.specs and not (inbox / "broken.mp4").exists()
    assert (inbox / "failed" / "broken.mp4").read_bytes() == b"x" * 10
    note = (inbox / "failed" / "broken.mp4.error.txt").read_text()
    assert "Input/output error" in note
    assert not any(Path(settings.temp_media_dir).glob("*/input"))


@pytest.mark.expect_error_logs("inbox_stage_failed")
def test_a_staging_error_on_our_side_leaves_the_file_in_the_inbox(tmp_path):
    settings = _settings(tmp_path)
    inbox = Path(settings.inbox_dir)
    inbox.mkdir()
    (inbox / "fine.mp4").write_bytes(b"x")

    def disk_full(src: Path, dest: Path) -> None:
        raise OSError(28, "No space left on device")

    accept = Accept()
    intake = _intake(settings, accept, stage=disk_full)
    assert intake.run_once(timeout_s=1) == 0
    assert (inbox / "fine.mp4").exists() and not (inbox / "failed").exists()


def test_a_full_queue_keeps_files_in_the_inbox(tmp_path):
    settings = _settings(tmp_path)
    inbox = Path(settings.inbox_dir)
    inbox.mkdir()
    for name in ("1.mp4", "2.mp4", "3.mp4"):
        (inbox / name).write_bytes(name.encode())
    accept = Accept(room=1)
    intake = _intake(settings, accept)
    intake.run_once(timeout_s=1)
    assert [s.filename for s in accept.specs] == ["1.mp4"]
    assert sorted(p.name for p in inbox.iterdir()) == ["2.mp4", "3.mp4"]


def test_stage_inbox_file_across_filesystems(tmp_path):
    """Copy, fsync, rename into place, then remove the original (here /dev/shm is another
    filesystem than the temporary folder)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to move across")
    import tempfile

    with tempfile.TemporaryDirectory(dir=shm) as other:
        src = Path(other) / "clip.mp4"
        src.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
        data = src.read_bytes()
        dest = tmp_path / "tmp" / "JOB" / "input" / "source.mp4"
        stage_inbox_file(src, dest)
        assert dest.read_bytes() == data and not src.exists()
        assert not dest.with_name("source.mp4.partial").exists()


def test_watcher_takes_a_renamed_file_and_ignores_the_partial_name(tmp_path):
    """The running watcher (watchfiles events, no rescans in between): a file written under
    ``.part`` and renamed into place is taken once, whole."""
    settings = _settings(tmp_path, INBOX_RESCAN_S=3600)
    inbox = Path(settings.inbox_dir)
    accept = Accept()
    intake = _intake(settings, accept)
    intake.start()
    try:
        partial = inbox / "movie.mp4.part"
        with open(partial, "wb") as fh:
            for _ in range(5):
                fh.write(b"y" * 4096)
                fh.flush()
                time.sleep(0.1)
        assert not accept.specs
        os.rename(partial, inbox / "movie.mp4")
        deadline = time.monotonic() + 10
        while not accept.specs and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        intake.stop()
    assert [s.filename for s in accept.specs] == ["movie.mp4"]
    assert accept.specs[0].staged_source.read_bytes() == b"y" * 4096 * 5


MP4_HEAD = b"\0\0\0\x18ftypisom\0\0\0\0" + b"\0" * 100


@pytest.mark.parametrize(
    "name, data, ext",
    [
        ("poly.html", MP4_HEAD, "mp4"),  # a video named .html: its container names the key
        ("evil.svg", b"<svg onload=alert(1)>", "bin"),
        ("run.exe", b"MZ" + b"\0" * 64, "bin"),
        ("noext", MP4_HEAD, "mp4"),
        ("clip.MKV", MP4_HEAD, "mkv"),
    ],
)
def test_the_staged_source_keeps_a_video_extension_or_the_neutral_one(tmp_path, name, data, ext):
    settings = _settings(tmp_path)
    inbox = Path(settings.inbox_dir)
    inbox.mkdir()
    (inbox / name).write_bytes(data)
    accept = Accept()
    assert _intake(settings, accept).run_once(timeout_s=5) == 1
    (spec,) = accept.specs
    assert spec.staged_source.name == f"source.{ext}" and spec.filename == name
    assert spec.staged_source.read_bytes() == data


@pytest.mark.parametrize(
    "name, shown, said",
    [
        ("\u202egpj.mp4", "gpj.mp4", "(U+202E)"),
        ("a\u2066b\u2069.mp4", "ab.mp4", "2 bidirectional control character(s) removed"),
        ("é" * 120 + "\u202e.mp4", "é" * 120 + ".mp4", "(U+202E)"),
        ("bad\udcffname.mp4", "bad\ufffdname.mp4", "not UTF-8"),
    ],
)
def test_a_name_is_cleaned_as_the_api_cleans_it_and_the_change_is_said(tmp_path, name, shown, said):
    settings = _settings(tmp_path)
    inbox = Path(settings.inbox_dir)
    inbox.mkdir()
    (inbox / name).write_bytes(b"v" * 100)
    accept = Accept()
    assert _intake(settings, accept).run_once(timeout_s=5) == 1
    (spec,) = accept.specs
    status = json.loads((Path(settings.local_store_dir) / keys.status_key(spec.job_id)).read_text())
    assert status["source"]["filename"] == spec.filename == shown
    (warning,) = status["warnings"]
    assert warning["code"] == "filename_changed" and said in warning["message"]
    assert spec.warnings == [warning]
    assert not (inbox / name).exists()  # taken, whatever its name
