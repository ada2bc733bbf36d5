"""Issue 16, case 7: the stop has a budget the daemon enforces. A job that ignores its
interrupt and a TOON helper that hangs on close do not hold the stop past
``stop_budget_s``: each step is cut off at its bound and the stop reports it."""

from __future__ import annotations

import threading
import time

import pytest

from vidwatch.config import load_settings
from vidwatch.daemon import runner as runner_module
from vidwatch.daemon import service as service_module
from vidwatch.daemon.runner import Runner
from vidwatch.daemon.service import Service, stop_budget_s
from vidwatch.jobs.staging import JobSpec, new_job_id, staged_source_path
from vidwatch.r2.local import LocalStore


class _Silent:
    enabled = False
    watchdog_s = None

    def __getattr__(self, name):
        return lambda *a, **k: False


@pytest.mark.expect_error_logs("runner_stop_timeout", "runner_error")
def test_a_stuck_job_and_a_hung_helper_do_not_hold_the_stop_past_its_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "INTERRUPT_WAIT_S", 1.0)
    monkeypatch.setattr(service_module, "STOP_TAIL_S", 1.5)
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            "LOCAL_STORE_DIR": str(tmp_path / "store"),
            "SHUTDOWN_GRACE_S": "1",
        }
    )
    release = threading.Event()
    started = threading.Event()

    def stuck_job(spec, **_):  # ignores its stop flag, as a job stuck in a library call
        started.set()
        release.wait(120)
        raise RuntimeError("released by the test")

    class HangingHelper:
        def close(self) -> None:
            release.wait(120)

    store = LocalStore(settings.local_store_dir)
    service = Service(settings, notifier=_Silent())
    service.store = store
    service.toon = HangingHelper()
    service.runner = Runner(
        settings=settings, store=store, models=None, toon=None, job_fn=stuck_job
    )
    service.runner.start()
    job_id = new_job_id()
    source = staged_source_path(settings, job_id, "mp4")
    source.parent.mkdir(parents=True)
    source.write_bytes(b"x")
    service.runner.submit(JobSpec(job_id=job_id, staged_source=source, origin="api"))
    assert started.wait(10)

    budget = stop_budget_s(settings)
    assert budget == 1 + 1.0 + 1.5
    result: dict[str, object] = {}
    began = time.monotonic()
    stopper = threading.Thread(target=lambda: result.update(clean=service.stop()), daemon=True)
    stopper.start()
    stopper.join(budget + 30)
    took = time.monotonic() - began
    release.set()  # the stuck job ends now, failing with the runner_error expected above
    for worker in service.runner._workers:  # ...within this test, not the next one's
        worker.join(10)
    assert not stopper.is_alive(), "the stop did not end"
    assert result["clean"] is False
    assert took <= budget + 0.5, f"the stop took {took:.1f} s, budget {budget} s"


def test_the_default_budget_fits_the_units_stop_timeout_with_margin():
    assert stop_budget_s(load_settings({})) == 30 + 15 + 10
