"""MODEL_BACKEND: YOLO exported once per weights file into MODEL_CACHE_DIR, and OpenVINO /
ONNX Runtime giving PyTorch's boxes (same class, IoU >= 0.98, confidence within 0.02) on
the shared media; MTCNN on OpenVINO finding the same faces as facenet-pytorch's MTCNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import face_set
from bench.equivalence import calibrated_yolo, match_boxes
from vidwatch.config import ConfigError, load_settings
from vidwatch.detectors.backends import export_dir, resolve_backend

pytestmark = pytest.mark.models


def _media_frames(media: Path, step: int = 25) -> list[np.ndarray]:
    import av

    frames = []
    for name in ("cuts_h264.mp4", "cuts_vp9.webm"):
        with av.open(str(media / name)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % step == 0:
                    frames.append(f.to_ndarray(format="bgr24"))
    return frames


@pytest.fixture(scope="module")
def frames(media) -> list[np.ndarray]:
    return _media_frames(media)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, frames) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("calibrated")
    return {
        task: calibrated_yolo(yaml, folder / f"{task}.pt", frames[::2])
        for task, yaml in (("detect", "yolo11n.yaml"), ("segment", "yolo11n-seg.yaml"))
    }


def _boxes(found, role: str):
    return [(o.class_id, o.confidence, o.box_xyxy) for o in getattr(found, role)]


def test_auto_is_openvino_on_the_cpu_and_explicit_runtimes_are_checked():
    assert resolve_backend("auto", "cpu") == "openvino"
    assert resolve_backend("auto", "cuda:0") == "torch"
    assert resolve_backend("onnx", "cpu") == "onnx"
    with pytest.raises(ConfigError, match="MODEL_BACKEND"):
        resolve_backend("openvino", "cuda:0")
    with pytest.raises(ConfigError, match="MODEL_BACKEND"):
        load_settings({"MODEL_BACKEND": "tensorrt"})
    assert load_settings({"MODEL_BACKEND": " OpenVINO "}).model_backend == "openvino"


@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_exported_yolo_gives_pytorch_boxes_on_the_shared_media(
    backend, calibrated, frames, tmp_path
):
    from vidwatch.detectors.yolo import YoloDetector

    common = {"roles": ("objects", "segments"), "confidence": 0.25, "device": "cpu"}
    ref = YoloDetector(calibrated["segment"], name="seg", **common)
    other = YoloDetector(
        calibrated["segment"], name="seg", backend=backend, cache_dir=tmp_path, **common
    )
    assert other.infos[0].extra["backend"] == backend
    # In batches, as the pipeline calls them (frames of one video per batch).
    compared = 0
    for size in {f.shape for f in frames}:
        batch = [f for f in frames if f.shape == size]
        for a, b in zip(ref.detect(batch), other.detect(batch), strict=True):
            for role in ("objects", "segments"):
                m = match_boxes(_boxes(a, role), _boxes(b, role), threshold=0.25)
                assert not m["unmatched"], (role, m)
                compared += m["compared"]
            assert len(a.segments) == len(b.segments)
    if backend == "openvino":
        assert other.openvino_precision == "<Type: 'float32'>"
    # The comparison is not vacuous: the calibrated model finds things on these frames.
    assert compared >= 50


def test_detect_model_export_matches_too_and_is_made_once_per_weights(calibrated, frames, tmp_path):
    from vidwatch.detectors import backends
    from vidwatch.detectors.weights import sha256_of
    from vidwatch.detectors.yolo import YoloDetector

    common = {"roles": ("objects",), "confidence": 0.25, "device": "cpu"}
    ref = YoloDetector(calibrated["detect"], name="det", **common)
    ov = YoloDetector(
        calibrated["detect"], name="det", backend="openvino", cache_dir=tmp_path, **common
    )
    batch = [f for f in frames if f.shape == frames[0].shape][:4]
    for a, b in zip(ref.detect(batch), ov.detect(batch), strict=True):
        assert not match_boxes(_boxes(a, "objects"), _boxes(b, "objects"), threshold=0.25)[
            "unmatched"
        ]
    folder = export_dir(tmp_path, calibrated["detect"], sha256_of(calibrated["detect"]), "openvino")
    stamp = (folder / "vidwatch-export.json").stat().st_mtime_ns
    calls = []
    real = backends._export
    backends._export = lambda *a, **k: calls.append(a) or real(*a, **k)
    try:
        YoloDetector(
            calibrated["detect"], name="det", backend="openvino", cache_dir=tmp_path, **common
        )
    finally:
        backends._export = real
    assert calls == [] and (folder / "vidwatch-export.json").stat().st_mtime_ns == stamp
    # One folder per weights file; no half-written export left behind.
    assert [p.name for p in (tmp_path / "yolo").iterdir()] == [folder.name]


def _outline_iou(a, b, shape) -> float:
    import cv2

    masks = []
    for poly in (a, b):
        m = np.zeros(shape[:2], np.uint8)
        cv2.fillPoly(m, [np.round(np.asarray(poly)).astype(np.int32)], 1)
        masks.append(m)
    union = (masks[0] | masks[1]).sum()
    return float((masks[0] & masks[1]).sum() / union) if union else 1.0


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_openvino_without_ultralytics_gives_ultralytics_own_results(
    task, calibrated, frames, tmp_path
):
    """The export run by yolo_openvino (no torch, no Ultralytics in the process) against the
    same export run by Ultralytics' predictor: the same detections in the same order, boxes
    within 0.05 px, scores within 0.001, outlines covering the same pixels (IoU >= 0.95: the
    masks are upsampled by OpenCV, not torch, and differ by a few pixels in 10^4)."""
    from vidwatch.detectors import yolo_openvino
    from vidwatch.detectors.quiet import import_yolo
    from vidwatch.detectors.yolo import YoloDetector, _openvino_compile_config

    roles = ("objects", "segments") if task == "segment" else ("objects",)
    common = {"roles": roles, "confidence": 0.25, "device": "cpu"}
    ours = YoloDetector(
        calibrated[task], name=task, backend="openvino", cache_dir=tmp_path, **common
    )
    assert isinstance(ours._native, yolo_openvino.OpenVinoYolo)
    theirs = YoloDetector(
        calibrated[task], name=task, backend="openvino", cache_dir=tmp_path, **common
    )
    folder = next((tmp_path / "yolo").glob("*/*_openvino_model"))
    theirs._native = None
    theirs._model = import_yolo()(str(folder), task=task)
    with _openvino_compile_config({}):
        theirs._predict([np.zeros((64, 64, 3), np.uint8)])
    compared = outlines = 0
    for frame in frames:
        (a,), (b,) = theirs.detect([frame]), ours.detect([frame])
        assert len(a.objects) == len(b.objects) and len(a.segments) == len(b.segments)
        for x, y in zip(a.objects, b.objects, strict=True):
            assert x.class_id == y.class_id and x.label == y.label
            assert abs(x.confidence - y.confidence) <= 0.001
            assert max(abs(p - q) for p, q in zip(x.box_xyxy, y.box_xyxy, strict=True)) <= 0.05
            compared += 1
        for x, y in zip(a.segments, b.segments, strict=True):
            assert _outline_iou(x.polygon, y.polygon, frame.shape) >= 0.95
            outlines += 1
    assert compared >= 50
    assert outlines >= 50 if task == "segment" else outlines == 0


def test_each_input_size_runs_a_fixed_shape_model_with_the_dynamic_models_outputs(
    calibrated, frames, tmp_path
):
    """The native runner compiles a model for each letterboxed size (the 16:9 one at
    start-up, with the blob cache; others as they come, without it: a compile with CACHE_DIR
    flips the process locale), up to MAX_SHAPES, then the dynamic export serves. Every
    shape's outputs equal the dynamic model's to the bit."""
    import openvino as ov

    from vidwatch.detectors import yolo_openvino
    from vidwatch.detectors.backends import openvino_config
    from vidwatch.detectors.yolo import YoloDetector

    det = YoloDetector(
        calibrated["segment"],
        name="segment",
        roles=("objects", "segments"),
        confidence=0.25,
        device="cpu",
        backend="openvino",
        cache_dir=tmp_path,
        openvino_config=openvino_config(tmp_path, threads=1),
    )
    runner = det._native
    assert isinstance(runner, yolo_openvino.OpenVinoYolo)
    assert list(runner._requests) == [(384, 640)]
    assert list((tmp_path / "openvino-blobs").glob("*.blob"))  # the start-up shape's

    class Recording:
        def __init__(self, core: ov.Core) -> None:
            self.core, self.configs = core, []

        def compile_model(self, model, device, config):
            self.configs.append(config)
            return self.core.compile_model(model, device, config)

    runner._core = recording = Recording(runner._core)
    core = ov.Core()
    dynamic = core.compile_model(
        runner._model, "CPU", {**openvino_config(None), "INFERENCE_PRECISION_HINT": "f32"}
    ).create_infer_request()
    sizes = [(720, 1280), (480, 640), (1280, 720), (500, 500), (300, 1000), (1000, 300)]
    base = frames[3]
    for h, w in sizes:
        frame = np.ascontiguousarray(np.resize(base, (h, w, 3)))
        image, _ = runner.letterbox(frame)
        assert image.shape[:2] == runner.input_size(h, w)
        (found,) = runner.predict([frame])
        assert len(found.boxes) == len(found.outlines or [])
        request = runner._request_for(image.shape[:2])
        dynamic.infer({0: yolo_openvino.to_input(image[None])})
        for k in range(2):
            assert np.array_equal(
                request.get_output_tensor(k).data, dynamic.get_output_tensor(k).data
            )
    assert len(runner._requests) == yolo_openvino.MAX_SHAPES
    assert runner._dynamic is not None  # the fifth and sixth sizes
    assert len(recording.configs) == 4  # three more sizes and the dynamic model, once
    assert all("CACHE_DIR" not in c for c in recording.configs)


def test_masks_of_takes_up_to_max_det_detections():
    """cv2.resize takes at most CV_CN_MAX (128 in OpenCV 5) channels a call: a frame with
    300 segmented detections (MAX_DET) still gets its masks, each the same as alone."""
    from vidwatch.detectors.yolo_openvino import MAX_DET, masks_of

    rng = np.random.default_rng(3)
    proto = rng.normal(size=(32, 96, 160)).astype(np.float32)
    coefficients = rng.normal(size=(MAX_DET, 32)).astype(np.float32)
    boxes = np.tile(np.array([[10, 20, 600, 370]], np.float32), (MAX_DET, 1))
    masks = masks_of(proto, coefficients, boxes, (384, 640))
    assert masks.shape == (MAX_DET, 384, 640)
    for k in (0, 127, 128, 299):
        alone = masks_of(proto, coefficients[k : k + 1], boxes[k : k + 1], (384, 640))
        assert np.array_equal(masks[k], alone[0])


def test_join_rings_walks_every_ring_and_returns_to_the_start():
    from vidwatch.detectors.yolo_openvino import join_rings

    square = np.array([[0, 0], [0, 10], [10, 10], [10, 0]])
    rings = [square, square + np.array([20, 0]), square + np.array([40, 0])]
    path = join_rings(rings)
    # Every corner of every ring is on the path; the first and last rings are closed.
    for ring in rings:
        for point in ring:
            assert (path == point).all(axis=1).any()
    assert (path[0] == path[4]).all()
    # Consecutive rings are joined where they come closest: (10, y) to (20, y).
    steps = np.abs(np.diff(path, axis=0)).max(axis=1)
    assert steps.max() == 10


def test_unwritable_cache_is_a_config_error_naming_it(calibrated, tmp_path):
    from vidwatch.detectors.yolo import YoloDetector

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="MODEL_CACHE_DIR"):
        YoloDetector(
            calibrated["detect"],
            name="det",
            roles=("objects",),
            confidence=0.25,
            device="cpu",
            backend="openvino",
            cache_dir=blocker,
        )


@pytest.fixture(scope="module")
def face_detectors(tmp_path_factory):
    from vidwatch.detectors.faces import MtcnnFaceDetector

    cache = tmp_path_factory.mktemp("mtcnn_cache")
    torch_det = MtcnnFaceDetector(min_confidence=0.0, device="cpu")
    ov_det = MtcnnFaceDetector(
        min_confidence=0.0, device="cpu", backend="openvino", cache_dir=cache
    )
    return torch_det, ov_det, cache


def _faces(det, img) -> list[tuple[tuple[float, ...], float]]:
    (found,) = det.detect([img])
    return [(f.box_xyxy, f.confidence) for f in found.faces]


def test_mtcnn_on_openvino_finds_the_faces_facenet_finds(face_detectors, media):
    torch_det, ov_det, cache = face_detectors
    assert ov_det.infos[0].extra["backend"] == "openvino"
    assert sorted(p.name for p in (next((cache / "mtcnn").iterdir())).glob("*.xml")) == [
        "onet.xml",
        "pnet.xml",
        "rnet.xml",
    ]
    frames = _media_frames(media, step=20)
    compared = 0
    for img in frames:
        a = [(b, p) for b, p in _faces(torch_det, img) if p >= 0.95]
        b = [(b, p) for b, p in _faces(ov_det, img) if p >= 0.85]
        for box, p in a:
            best = max((face_set.iou(box, other) for other, _ in b), default=0.0)
            assert best >= 0.8, (box, p, b)
            compared += 1
    assert compared >= 4


def test_mtcnn_on_openvino_recalls_faces_of_every_size_as_well_as_facenet(face_detectors, media):
    torch_det, ov_det, _ = face_detectors

    def boxes(img):
        return [b for b, p in _faces(torch_det, img) if p >= 0.9]

    cases = face_set.build(media, face_set.face_crops(media, boxes))
    ref = face_set.score([_faces(torch_det, img) for img, _ in cases], [t for _, t in cases])
    ours = face_set.score([_faces(ov_det, img) for img, _ in cases], [t for _, t in cases])
    assert ref["faces"] == ours["faces"] >= 40
    assert ours["recall"] >= ref["recall"], (ref, ours)
    assert ours["false_positives"] <= ref["false_positives"] + 1, (ref, ours)


def test_a_warm_start_on_openvino_imports_neither_torch_nor_ultralytics(calibrated, tmp_path):
    """Once the exports and conversions are cached, every model of the defaults (one -seg
    YOLO, MTCNN, dlib's descriptors) loads and runs with no PyTorch, torchvision, Ultralytics
    or facenet-pytorch in the process: they are most of a cold start's imports."""
    import subprocess
    import sys

    env = {
        "DETECT_MODEL": str(calibrated["segment"]),
        "SEGMENT_MODEL": str(calibrated["segment"]),
        "MODEL_BACKEND": "openvino",
        "MODEL_DEVICE": "auto",
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
        "ALLOW_MODEL_DOWNLOAD": "false",
    }
    script = (
        "import sys, numpy as np\n"
        "from vidwatch.config import load_settings\n"
        "from vidwatch.detectors.registry import load_models\n"
        "models = load_models(load_settings())\n"
        "found = models.detect([np.zeros((720, 1280, 3), np.uint8)])\n"
        "heavy = ('torch', 'torchvision', 'ultralytics', 'facenet_pytorch')\n"
        "print(len(found), models.describer is not None,"
        " sorted(m for m in heavy if m in sys.modules))\n"
    )
    import os

    run_env = {**os.environ, **env}
    first = subprocess.run(
        [sys.executable, "-c", script], env=run_env, capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run(
        [sys.executable, "-c", script], env=run_env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.split("\n")[-2] == "1 True []", again.stdout


def test_auto_device_without_a_gpu_driver_does_not_import_torch(monkeypatch, tmp_path):
    import subprocess
    import sys

    from vidwatch.detectors import base

    script = (
        "import sys\n"
        "from vidwatch.detectors.base import resolve_device\n"
        "print(resolve_device('auto'), resolve_device('cpu'), 'torch' in sys.modules)\n"
    )
    if not base.gpu_driver_present():
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert out.stdout.split() == ["cpu", "cpu", "False"], out.stderr[-2000:]
    # Where a driver's device file exists, CUDA is asked (here: none, so the CPU).
    fake = tmp_path / "nvidiactl"
    fake.write_text("")
    monkeypatch.setattr(base, "GPU_DEVICE_FILES", (str(fake),))
    assert base.gpu_driver_present()
    import torch

    assert base.resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_compiles_with_a_blob_cache_take_turns(tmp_path):
    """OpenVINO writes a compiled blob in place and maps the blobs it finds: a second
    process mapping a half-written blob died of SIGBUS (two daemons starting on one
    MODEL_CACHE_DIR). ``compiling`` lets one compile at a time per cache folder."""
    import threading
    import time

    from vidwatch.detectors.backends import compiling

    config = {"CACHE_DIR": str(tmp_path)}
    inside = threading.Event()
    spans: dict[str, tuple[float, float]] = {}

    def hold(name: str, seconds: float) -> None:
        with compiling(config):
            started = time.monotonic()
            inside.set()
            time.sleep(seconds)
            spans[name] = (started, time.monotonic())

    first = threading.Thread(target=hold, args=("first", 0.3))
    first.start()
    inside.wait(5)
    second = threading.Thread(target=hold, args=("second", 0.0))
    second.start()
    first.join(5)
    second.join(5)
    assert spans["second"][0] >= spans["first"][1]
    with compiling({}):  # no cache folder: nothing to wait for
        pass


_FIRST_INFERENCES = """
import sys, threading
import numpy as np
import openvino as ov
import openvino.opset13 as ops
from vidwatch.detectors.backends import compile_on_cpu

x = ops.parameter([1, 3, 8, 8], ov.Type.f32)
model = ov.Model([ops.relu(x)], [x])
core = ov.Core()
requests = [
    compile_on_cpu(core, model, {"INFERENCE_NUM_THREADS": 1}).create_infer_request()
    for _ in range(8)
]
sys.setswitchinterval(1e-6)  # threads change hands as often as they can
start = threading.Barrier(len(requests))

def first_inference(request):
    start.wait()
    request.infer({0: np.zeros((1, 3, 8, 8), np.float32)})

threads = [threading.Thread(target=first_inference, args=(r,), daemon=True) for r in requests]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=20)
print("hung" if any(t.is_alive() for t in threads) else "ok", flush=True)
"""


def test_first_inferences_in_several_threads_at_once_do_not_hang():
    """OpenVINO's binding initialises its numpy bridge at the first ``Tensor.data`` of a
    process holding the GIL, and lets it go inside: model lanes making their first inference
    at once hung the process for good (18 of 20 fresh processes with these eight threads,
    without ``backends.binding_ready``, which every compile of ours calls first)."""
    import subprocess
    import sys

    for _ in range(5):
        try:
            run = subprocess.run(
                [sys.executable, "-c", _FIRST_INFERENCES],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError("a process hung at its first inferences") from None
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.strip() == "ok", run.stdout
