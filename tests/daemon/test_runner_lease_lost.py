"""A lease lost in the middle of a real job: the real runner, run_job, analysis and writer
pool (random-weight models) on a real local store. Another worker takes the lease over and
records the job as its own; the first must stop writing and leave the job to it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vidwatch.config import load_settings
from vidwatch.daemon.runner import Runner
from vidwatch.jobs.manifest import read_manifest, write_manifest
from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy
from vidwatch.r2 import keys
from vidwatch.r2.leases import Lease, read_lease
from vidwatch.r2.local import LocalStore

pytestmark = pytest.mark.models


class _RecordingStore(LocalStore):
    """The first worker's store: remembers when each of its writes landed (the refused
    ones, such as its failed lease renewal, are not writes)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: list[tuple[float, str]] = []

    def put_bytes(self, key, data, **kwargs):
        info = super().put_bytes(key, data, **kwargs)
        self.writes.append((time.monotonic(), key))
        return info

    def put_file(self, key, path, **kwargs):
        info = super().put_file(key, path, **kwargs)
        self.writes.append((time.monotonic(), key))
        return info


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.expect_error_logs(
    "frame_write_failed", "job_failed", "lease_lost", "manifest_write_failed"
)
def test_a_real_job_that_loses_its_lease_stops_writing_and_leaves_the_job(
    tmp_path, media, models, model_env
):
    settings = load_settings(
        {
            **model_env,
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            "LOCAL_STORE_DIR": str(tmp_path / "store"),
            "TOON_ENABLED": "false",
            "SAMPLE_FPS": "5",  # about 60 sampled frames: the job runs long enough to lose
            "MODEL_BATCH_SIZE": "1",  # the job looks at its stop flag before every batch
            "LEASE_TTL_S": "3",
            "LEASE_RENEW_S": "0.2",
        }
    )
    ours = _RecordingStore(settings.local_store_dir)
    theirs = LocalStore(settings.local_store_dir)  # the other worker, on the same bucket
    runner = Runner(settings=settings, store=ours, models=models, toon=None, owner="A")
    runner.start()
    job_id = new_job_id()
    staged = stage_copy(settings, job_id, media / "cuts_h264.mp4")
    try:
        runner.submit(JobSpec(job_id, staged, "inbox", "cuts_h264.mp4"))
        assert _wait_for(lambda: ours.head(keys.frame_json_key(job_id, 0)) is not None, 120)

        # Worker B takes the lease over (as after an expiry it may) and marks the job.
        now = time.time()
        stolen = Lease(job_id, "B", acquired_at=now, renewed_at=now, expires_at=now + 3600)
        theirs.put_bytes(keys.lease_key(job_id), stolen.to_bytes())
        mine = read_manifest(theirs, job_id)
        mine.stage = "scenes"
        write_manifest(theirs, mine)
        stolen_at = time.monotonic()
        their_status = theirs.get_bytes(keys.status_key(job_id))

        assert runner.wait_idle(120)  # a loaded CI machine may take a while per frame
        ended = time.monotonic()
        time.sleep(1.0)  # a write left behind in a pool would land now
    finally:
        runner.shutdown(5)

    # The first worker did not mark the job: neither failed, nor queued, nor completed.
    assert theirs.get_bytes(keys.status_key(job_id)) == their_status
    assert theirs.head(keys.results_key(job_id)) is None
    lease, _, _ = read_lease(theirs, job_id)
    assert lease is not None and lease.owner == "B" and not lease.released
    # It stopped: nothing written after its job ended, only frames after the takeover (the
    # writes before its next renewal, and those already past the lease check then), and
    # the job did not run on to its end.
    assert not [key for at, key in ours.writes if at > ended]
    late = [key for at, key in ours.writes if at > stolen_at]
    assert all("/frames/" in key or "/analysis/json/" in key for key in late), late
    assert not any(key.endswith(("status.json", "lease.json")) for key in late)
    written = {key for _, key in ours.writes if "/analysis/json/" in key}
    assert len(written) < 40, f"{len(written)} frame documents: the job ran on"
