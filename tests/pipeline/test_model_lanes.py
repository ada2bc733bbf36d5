"""Model lanes (MODEL_WORKERS): batches of sampled frames run on several copies of the models
at once, and the job's frames, identities and documents still come out in frame order,
each with its own frame's findings; a lane is never used by two callers at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest

from vidwatch.config import load_settings
from vidwatch.detectors.backends import lanes_and_threads
from vidwatch.detectors.registry import ModelSet
from vidwatch.detectors.types import Detections, ModelInfo, ObjectDetection
from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, analyze
from vidwatch.r2.local import LocalStore

FRAMES = 24
STEP = 10  # grey level of frame n: STEP * n


def grey_ramp(path: Path) -> Path:
    """A 24-frame clip whose frame n is flat grey STEP * n: a frame names itself."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "0"}
        for n in range(FRAMES):
            img = np.full((48, 64, 3), STEP * n, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class Recorder:
    """Shared by the lanes' detectors: how many calls overlap, and whether a lane's detector
    is ever entered twice at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[int] = set()


class SlowGrey:
    """Reports each frame's grey level as an object's confidence; the frames whose level is
    a multiple of 4 * STEP take longer, so later batches finish before earlier ones."""

    infos = (ModelInfo("objects", "grey", None),)

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.busy = False

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        assert not self.busy, "a lane was used by two callers at once"
        self.busy = True
        r = self.recorder
        with r.lock:
            r.running += 1
            r.most = max(r.most, r.running)
            r.threads.add(threading.get_ident())
        try:
            out = []
            for frame in frames:
                level = float(frame.mean())
                time.sleep(0.12 if round(level / STEP) % 4 == 0 else 0.01)
                box = (0, 0, 8, 8)
                out.append(Detections(objects=(ObjectDetection.make("grey", 0, level / 255, box),)))
            return out
        finally:
            with r.lock:
                r.running -= 1
            self.busy = False


def _two_slow_lanes(settings, recorder: Recorder) -> ModelSet:
    """A ModelSet of two lanes, each a SlowGrey detector reporting to ``recorder``."""
    return ModelSet(
        detectors=[SlowGrey(recorder)],
        more_lanes=[[SlowGrey(recorder)]],
        device="cpu",
        settings=settings,
    )


def test_two_lanes_run_at_once_and_frames_come_back_in_order(tmp_path):
    source = grey_ramp(tmp_path / "ramp.mp4")
    settings = load_settings(
        {"TEMP_MEDIA_DIR": str(tmp_path / "tmp"), "SAMPLE_FPS": "25", "MODEL_BATCH_SIZE": "1"}
    )
    recorder = Recorder()
    models = _two_slow_lanes(settings, recorder)
    store = LocalStore(tmp_path / "store")
    ctx = AnalysisContext(job_id="01JD3W5Q6Y7Z8A9B0C1D2E3F4G", store=store, models=models)
    results = analyze(source, ctx, AnalysisOptions.from_settings(settings)).to_json()

    assert recorder.most == 2 and len(recorder.threads) == 2
    frames = results["frames"]
    assert [f["frame"] for f in frames] == list(range(FRAMES))
    for f in frames:  # each frame carries its own findings, not a neighbour's
        (found,) = f["objects"]
        assert found["confidence"] * 255 == pytest.approx(STEP * f["frame"], abs=3)
    # The lanes' busy time is summed: more than the wall time of the model stage alone.
    assert results["timings_s"]["models"] > 0


def test_a_lane_serves_one_caller_at_a_time(tmp_path):
    """Jobs running at once (JOB_CONCURRENCY) share the ModelSet: each call takes a lane of
    its own, and a caller waits when every lane is taken."""
    settings = load_settings({"TEMP_MEDIA_DIR": str(tmp_path / "tmp")})
    recorder = Recorder()
    models = _two_slow_lanes(settings, recorder)
    frame = np.zeros((8, 8, 3), np.uint8)  # level 0: the slow path
    errors: list[BaseException] = []

    def call() -> None:
        try:
            for _ in range(3):
                models.detect([frame])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert recorder.most == 2  # four callers, never more than the two lanes at once


def test_workers_auto_is_one_single_threaded_lane_per_core_on_openvino(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert lanes_and_threads(0, "openvino", "cpu") == (2, 1)
    assert lanes_and_threads(0, "torch", "cpu") == (1, None)
    assert lanes_and_threads(0, "torch", "cuda:0") == (1, None)
    assert lanes_and_threads(1, "openvino", "cpu") == (1, 2)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert lanes_and_threads(0, "openvino", "cpu") == (4, 2)  # memory: at most 4 lanes
    assert lanes_and_threads(3, "openvino", "cpu") == (3, 2)
    assert lanes_and_threads(8, "openvino", "cpu") == (8, 1)  # asked for: as many as asked


@pytest.mark.models
def test_openvino_lanes_hold_their_own_unpinned_single_threaded_models(
    make_settings, weights, monkeypatch
):
    """Real models: two lanes, each with its own YOLO (one -seg pass serving objects and
    masks, as the defaults are) and MTCNN, compiled single-threaded without CPU pinning
    (pinned single-threaded models all land on one core)."""
    from vidwatch.detectors.faces import MtcnnFaceDetector
    from vidwatch.detectors.registry import load_models
    from vidwatch.detectors.yolo import YoloDetector

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    seg = str(weights["segment"])
    models = load_models(
        make_settings(model_workers=0, model_backend="auto", detect_model=seg, segment_model=seg)
    )
    assert len(models.lanes) == 2 and models.threads_per_lane == 1
    first, second = models.lanes
    assert [type(d) for d in first] == [YoloDetector, MtcnnFaceDetector]
    assert all(a is not b for a, b in zip(first, second, strict=True))
    assert {i.role for i in first[0].infos} == {"detect", "segment"}
    compiled = first[0].openvino_model
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    assert str(compiled.get_property("ENABLE_CPU_PINNING")) in ("False", "false", "0")
    assert first[0].openvino_precision == "<Type: 'float32'>"
    img = np.zeros((96, 128, 3), np.uint8)
    assert len(models.detect([img, img])) == 2


def test_lanes_hand_batches_back_in_the_order_they_were_given(tmp_path):
    """Identities are assigned, and frame entries made, as batches come back: in the order
    the frames were sampled, although the slow batches finish after later ones."""
    from vidwatch.pipeline.analysis import _Lanes, _Timings
    from vidwatch.pipeline.video import Frame

    settings = load_settings({"TEMP_MEDIA_DIR": str(tmp_path / "tmp")})
    recorder = Recorder()
    models = _two_slow_lanes(settings, recorder)
    lanes = _Lanes(models, _Timings())
    got: list[int] = []
    for n in range(12):
        img = np.full((8, 8, 3), STEP * n, np.uint8)  # every 4th is slow
        lanes.submit([(Frame(n, n / 25, img), 0)])
        got += [batch[0][0].index for batch, _ in lanes.ready()]
    got += [batch[0][0].index for batch, _ in lanes.rest()]
    lanes.close()
    assert got == list(range(12))
    assert recorder.most == 2
