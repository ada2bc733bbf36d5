"""Issue 16, case 3 (inbox): a dropped file that does not fit in staging is tried again
with a growing wait, and after INBOX_STAGE_ATTEMPTS goes to ``failed/`` with its
``.error.txt``; nothing of it stays in staging. TEMP_MEDIA_DIR is a real 1 MiB tmpfs (so
staging is on another file system than the inbox and the file is copied, as across disks)."""

from __future__ import annotations

import os
import time

import pytest
from structlog.testing import capture_logs

from tests.full_disk import small_tmpfs
from vidwatch.config import load_settings
from vidwatch.daemon.intake_inbox import InboxIntake, stage_backoff_s
from vidwatch.r2.local import LocalStore

MiB = 1024 * 1024


@pytest.mark.expect_error_logs("inbox_stage_failed")
def test_a_file_that_does_not_fit_backs_off_then_goes_to_failed(tmp_path):
    with small_tmpfs(tmp_path / "staging", 1 * MiB) as staging:
        settings = load_settings(
            {
                "TEMP_MEDIA_DIR": str(staging),
                "LOCAL_STORE_DIR": str(tmp_path / "store"),
                "INBOX_DIR": str(tmp_path / "inbox"),
                "INBOX_SETTLE_S": "0.1",
                "INBOX_STAGE_ATTEMPTS": "3",
            }
        )
        submitted = []
        intake = InboxIntake(
            settings,
            LocalStore(settings.local_store_dir),
            submit=lambda spec: submitted.append(spec) or True,
            has_room=lambda: True,
        )
        intake.prepare()
        video = tmp_path / "inbox" / "holiday.mp4"
        video.write_bytes(os.urandom(3 * MiB))
        intake.rescan()
        failed = tmp_path / "inbox" / "failed" / "holiday.mp4"
        deadline = time.monotonic() + 30
        with capture_logs() as logs:
            while not failed.exists():
                assert time.monotonic() < deadline, "the file never went to failed/"
                intake.tick()
                time.sleep(0.05)
        leftovers = [p for p in staging.rglob("*") if p.is_file()]

    tries = [e for e in logs if e["event"] == "inbox_stage_failed"]
    assert [e["attempt"] for e in tries] == [1, 2, 3]
    assert [e.get("retry_in_s") for e in tries[:2]] == [1.0, 2.0]
    assert stage_backoff_s(10, 2.0) == 300.0  # the wait is bounded
    assert not video.exists() and failed.read_bytes() and submitted == []
    note = failed.with_name("holiday.mp4.error.txt").read_text()
    assert "3 attempts" in note and "No space left on device" in note
    assert leftovers == []
