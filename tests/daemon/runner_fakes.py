"""A stand-in for run_job in the runner and scanner tests: it writes manifests as run_job
does and can be held at any point, so those tests are quick and deterministic."""

from __future__ import annotations

import threading
import time
from collections import Counter

from vidwatch.errors import JobInterrupted
from vidwatch.jobs.manifest import Manifest, read_manifest, utc_now, write_manifest
from vidwatch.r2.leases import LeaseLost


class FakeJobs:
    """Stands in for run_job: writes running, then completed (or failed), counting runs."""

    def __init__(
        self,
        *,
        seconds: float = 0.0,
        fail: set[str] | None = None,
        crash: set[str] | None = None,
        hold: threading.Event | None = None,
    ) -> None:
        self.seconds = seconds
        self.fail = fail or set()
        self.crash = crash or set()
        self.hold = hold
        self.runs: Counter[str] = Counter()
        self.started = threading.Event()
        self.write_errors: list[Exception] = []
        self._lock = threading.Lock()

    def __call__(self, spec, *, store, settings, models, toon, on_progress=None, stop=None):
        with self._lock:
            self.runs[spec.job_id] += 1
        manifest = read_manifest(store, spec.job_id) or Manifest(
            job_id=spec.job_id, origin=spec.origin
        )
        manifest.state, manifest.stage, manifest.attempts = (
            "running",
            "analyzing",
            manifest.attempts + 1,
        )
        write_manifest(store, manifest)
        self.started.set()
        if spec.job_id in self.crash:
            raise RuntimeError("a bug outside run_job's own handling")
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline or (self.hold is not None and not self.hold.is_set()):
            if stop is not None and stop.is_set():
                manifest.state, manifest.stage = "queued", "queued"
                try:
                    write_manifest(store, manifest)
                except LeaseLost as exc:
                    self.write_errors.append(exc)
                raise JobInterrupted(spec.job_id)
            time.sleep(0.01)
        if spec.job_id in self.fail:
            manifest.state, manifest.error = "failed", {"code": "invalid_video", "message": "x"}
        else:
            manifest.state = "completed"
        manifest.stage, manifest.finished_at = "done", utc_now()
        write_manifest(store, manifest)
        return manifest
