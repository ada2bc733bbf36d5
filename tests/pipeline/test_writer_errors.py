"""The frame writer's failures: raised in the job's own thread and logged with their
frame, also when the job is already failing for a reason of its own. The models are stand-ins
(no weights needed): what is under test is the pipeline's writer, on a real video and store."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from vidwatch.config import load_settings
from vidwatch.detectors.registry import ModelSet
from vidwatch.detectors.types import Detections
from vidwatch.jobs.staging import new_job_id
from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, analyze
from vidwatch.r2.local import LocalStore
from vidwatch.r2.store import TransientStoreError


class _FailingFrameStore(LocalStore):
    """Refuses the writes of one frame, as a store in an outage would."""

    def __init__(self, root: Path, frame: int) -> None:
        super().__init__(root)
        self.frame = frame
        self.refused = threading.Event()

    def put_many(self, items):
        items = list(items)
        if any(f"/frame_{self.frame}." in i.key for i in items):
            self.refused.set()
            raise TransientStoreError(f"store unavailable for frame {self.frame}")
        return super().put_many(items)


class _Models:
    """Finds nothing; ``fail_after`` calls, it raises (after the store refused a write)."""

    def __init__(self, store: _FailingFrameStore, fail_after: int | None) -> None:
        self.store, self.fail_after, self.calls = store, fail_after, 0
        self.infos = ()

    def detect(self, frames):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            assert self.store.refused.wait(10)
            raise RuntimeError("the model broke")
        return [Detections() for _ in frames]


def _analyze(tmp_path: Path, media: Path, *, fail_after: int | None):
    settings = load_settings(
        {"TEMP_MEDIA_DIR": str(tmp_path / "tmp"), "LOCAL_STORE_DIR": str(tmp_path / "store")}
    )
    store = _FailingFrameStore(tmp_path / "store", frame=0)
    models = ModelSet(detectors=[_Models(store, fail_after)], device="cpu", settings=settings)
    ctx = AnalysisContext(job_id=new_job_id(), store=store, models=models)
    options = AnalysisOptions(sample_fps=24, batch_size=1, write_workers=1)
    with (
        capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs,
        pytest.raises(Exception) as raised,
    ):
        analyze(media / "single_shot.mp4", ctx, options)
    return raised.value, [e for e in logs if e["event"] == "frame_write_failed"]


@pytest.mark.expect_error_logs("frame_write_failed")
def test_a_failed_frame_write_fails_the_analysis_and_is_logged(tmp_path, media):
    error, logged = _analyze(tmp_path, media, fail_after=None)
    assert isinstance(error, TransientStoreError)
    assert [e["frame"] for e in logged] == [0]
    assert "store unavailable for frame 0" in logged[0]["error"]
    assert logged[0]["code"] == "store_unavailable"


@pytest.mark.expect_error_logs("frame_write_failed")
def test_a_failed_write_is_logged_when_the_job_fails_for_another_reason(tmp_path, media):
    error, logged = _analyze(tmp_path, media, fail_after=1)
    assert isinstance(error, RuntimeError)  # the job's own error is the one raised
    assert [e["frame"] for e in logged] == [0]  # and the writer's is not lost
