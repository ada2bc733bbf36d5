"""MTCNN on OpenVINO: what vidwatch.detectors.mtcnn adds around facenet-pytorch's nets
(pre-processing in the graph, the conversion cache, start-up without torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidwatch.detectors import mtcnn, mtcnn_openvino, nms

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, dict]:
    """The three nets converted into a cache folder, and the OpenVINO models."""
    import openvino as ov

    from vidwatch.detectors.faces import _facenet_nets

    cache = tmp_path_factory.mktemp("mtcnn_nets")
    models = mtcnn_openvino.fp32_models(ov.Core(), lambda: _facenet_nets("cpu"), cache)
    return cache, models


def _frame(media: Path) -> np.ndarray:
    import av

    with av.open(str(media / "cuts_h264.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == 10:  # the astronaut's face
                return f.to_ndarray(format="bgr24")
    raise AssertionError("frame 10 not found")


def test_the_runners_give_the_nets_outputs_on_numpy_normalisation(converted, media):
    """P-Net's runner takes the uint8 BGR scale and R-Net's / O-Net's the float crops as they
    are; RGB, NCHW and (x - 127.5) / 128 give the nets' outputs on numpy's normalisation."""
    import openvino as ov

    _, models = converted
    core = ov.Core()
    img = _frame(media)
    small = cv2.resize(img, (387, 218), interpolation=cv2.INTER_AREA)[None]
    boxes = np.array([[500, 60, 700, 260], [100, 100, 160, 170], [0, 0, 40, 40]], np.float32)
    inputs = {
        "pnet": small,
        "rnet": mtcnn._crops(img, boxes, 24)[0],
        "onet": mtcnn._crops(img, boxes, 48)[0],
    }
    assert inputs["pnet"].dtype == np.uint8 and inputs["rnet"].dtype == np.float32
    for name, x in inputs.items():
        plain = core.compile_model(models[name], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        want = plain.create_infer_request().infer({0: mtcnn._normalise(x)})
        got = mtcnn_openvino.compile_runner(core, models[name], name, None)(x)
        assert len(got) == len(plain.outputs)
        for i, out in enumerate(got):
            np.testing.assert_allclose(out, want[i], rtol=0, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A MODEL_CACHE_DIR holding the converted nets and the int8 P-Net."""
    from vidwatch.detectors.faces import MtcnnFaceDetector

    root = tmp_path_factory.mktemp("models")
    det = MtcnnFaceDetector(min_confidence=0.9, device="cpu", backend="openvino", cache_dir=root)
    assert det.int8_nets == mtcnn_openvino.INT8_NETS == ("pnet", "rnet")
    assert det.infos[0].extra["int8"] == ["pnet", "rnet"]
    return root


def test_the_int8_nets_are_quantized_once_and_read_back(warm_cache, monkeypatch):
    from vidwatch.detectors.faces import MtcnnFaceDetector

    (folder,) = (warm_cache / "mtcnn-int8").iterdir()
    assert folder.name.endswith(str(mtcnn_openvino.int8_key()))
    assert sorted(p.name for p in folder.iterdir()) == [
        "pnet.bin",
        "pnet.xml",
        "rnet.bin",
        "rnet.xml",
    ]

    def no_quantizing(*args, **kwargs):
        raise AssertionError("quantized again")

    monkeypatch.setattr(mtcnn_openvino, "_quantized", no_quantizing)
    again = MtcnnFaceDetector(
        min_confidence=0.9, device="cpu", backend="openvino", cache_dir=warm_cache
    )
    assert again.int8_nets == ("pnet", "rnet")
    fp32 = MtcnnFaceDetector(
        min_confidence=0.9, device="cpu", backend="openvino", cache_dir=warm_cache, int8=False
    )
    assert fp32.int8_nets == () and "int8" not in fp32.infos[0].extra


def test_int8_finds_the_faces_fp32_finds(warm_cache, media):
    """The shared media's faces: as many per frame with P-Net and R-Net in int8, each at
    IoU >= 0.85 and its probability within 0.01 of fp32's (measured: IoU 0.89 at least, a
    42 px face moved by 2.4 px; 0.89 on the bench video too)."""
    from bench import face_set
    from tests.detectors.test_backends import _media_frames
    from vidwatch.detectors.faces import MtcnnFaceDetector

    kw = {"min_confidence": 0.9, "device": "cpu", "backend": "openvino", "cache_dir": warm_cache}
    int8, fp32 = MtcnnFaceDetector(**kw), MtcnnFaceDetector(**kw, int8=False)
    compared = 0
    for img in _media_frames(media, step=20):
        (a,), (b,) = fp32.detect([img]), int8.detect([img])
        assert len(a.faces) == len(b.faces)
        for x, y in zip(a.faces, b.faces, strict=True):
            assert face_set.iou(x.box_xyxy, y.box_xyxy) >= 0.85
            assert abs(x.confidence - y.confidence) <= 0.01
            compared += 1
    assert compared >= 4


def test_a_warm_cache_starts_without_facenet_torch_or_nncf(warm_cache):
    """With the nets converted and quantized, the OpenVINO detector imports none of them."""
    code = (
        "import sys; from pathlib import Path\n"
        "from vidwatch.detectors.faces import MtcnnFaceDetector\n"
        "import numpy as np\n"
        f"d = MtcnnFaceDetector(min_confidence=0.9, device='cpu', backend='openvino', "
        f"cache_dir=Path({str(warm_cache)!r}))\n"
        "d.detect([np.zeros((72, 128, 3), np.uint8)])\n"
        "print(d.int8_nets, sorted(m for m in ('torch', 'facenet_pytorch', 'nncf') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "('pnet', 'rnet') []", out.stdout + out.stderr


@pytest.mark.parametrize("method", ["Union", "Min"])
def test_nms_over_the_pairwise_matrix_keeps_what_box_by_box_keeps(method):
    rng = np.random.default_rng(7)
    for n in (1, 2, 30, 400, 1500):
        xy = rng.uniform(0, 300, (n, 2)).astype(np.float32)
        side = rng.uniform(0, 60, (n, 1)).astype(np.float32)
        side[::11] = 0  # empty boxes: 0 / 0 overlaps
        boxes = np.concatenate([xy, xy + side], axis=1)
        boxes[n // 2 :: 7] = boxes[n // 2]  # duplicates
        scores = np.round(rng.uniform(0.6, 1.0, n), 2).astype(np.float32)  # ties
        for threshold in (0.5, 0.7):
            with np.errstate(invalid="ignore", divide="ignore"):
                want = nms.nms_loop(boxes, scores, threshold, method)
            got = nms.nms(boxes, scores, threshold, method)
            np.testing.assert_array_equal(got, want)


def test_face_int8_reaches_the_lanes_from_the_setting(warm_cache, tmp_path):
    from vidwatch.config import load_settings
    from vidwatch.detectors.registry import load_models

    for value, nets in (("false", ()), ("true", ("pnet", "rnet"))):
        settings = load_settings(
            {
                "DETECT_MODEL": "none",
                "SEGMENT_MODEL": "none",
                "FACE_IDENTITIES": "false",
                "FACE_INT8": value,
                "MODEL_BACKEND": "openvino",
                "MODEL_WORKERS": "2",
                "MODEL_CACHE_DIR": str(warm_cache),
                "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            }
        )
        models = load_models(settings)
        assert [lane[0].int8_nets for lane in models.lanes] == [nets, nets]
