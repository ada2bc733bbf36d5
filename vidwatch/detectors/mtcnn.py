"""MTCNN's three stages over facenet-pytorch's nets, without its per-frame overheads.

facenet-pytorch's ``detect_face`` turns the whole frame into a float tensor, builds the
image pyramid with ``interpolate(mode="area")`` and cuts every candidate out of the float
frame one by one: at 720p that is about half of its time, not the nets. This is the same
algorithm (the same pyramid scales, thresholds, box regressions, NMS steps and crops, so
the same faces) with the pyramid and the crops made by OpenCV's area resampling from the
``uint8`` frame, the candidate bookkeeping in numpy, and the nets called through a small
runner, so they can run on PyTorch or on OpenVINO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    import openvino as ov
    import torch

# A net runner: a BGR NHWC batch in (P-Net: uint8 pyramid scales; R-Net, O-Net: float32
# crops), the net's outputs (numpy) out. The runner normalises (on OpenVINO, in the graph).
NetRunner = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass(frozen=True)
class MtcnnParams:
    min_face_px: float = 20.0
    factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)


def pyramid_scales(h: int, w: int, params: MtcnnParams) -> list[float]:
    """The scales facenet-pytorch's MTCNN uses (first: 12 px net window = min face)."""
    m = 12.0 / params.min_face_px
    minl = min(h, w) * m
    scales = []
    scale = m
    while minl >= 12:
        scales.append(scale)
        scale *= params.factor
        minl *= params.factor
    return scales


def _halves(image: np.ndarray) -> list[np.ndarray]:
    """The frame and its successive halvings (area averages of 2x2 pixels: OpenCV's fast
    integer path), down to the size of P-Net's window."""
    levels = [image]
    while min(levels[-1].shape[:2]) // 2 >= 12:
        last = levels[-1]
        size = (last.shape[1] // 2, last.shape[0] // 2)
        levels.append(cv2.resize(last, size, interpolation=cv2.INTER_AREA))
    return levels


def _source_for(halves: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """The smallest level at least three times the target size in both directions.

    Area resampling from the full frame costs about 3 ms a pyramid scale at 720p, small
    scales as much as large ones (OpenCV reads every source pixel): 32 of MTCNN's 95 ms.
    From a level at least three times the target's size each output pixel still averages
    3x3 or more of that level, so the scales differ from the full frame's by less than one
    grey level on average, and the same faces are found (bench/face_set.py, the face-count
    truths in tests/pipeline). Twice was measured too: 2.6 ms faster, but one false face
    (p 0.93) appeared on the benchmark video."""
    source = halves[0]
    for level in halves[1:]:
        if level.shape[1] >= 3 * width and level.shape[0] >= 3 * height:
            source = level
        else:
            break
    return source


def _normalise(images: np.ndarray) -> np.ndarray:
    """BGR NHWC (uint8 or float32) -> float32 RGB NCHW scaled to [-1, 1) as the nets were
    trained (on OpenVINO the graph does this: ``with_preprocessing``)."""
    x = images[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
    x -= 127.5
    x *= 0.0078125
    return x


# Above this many boxes NMS goes box by box (its pairwise matrix would not fit in cache).
_NMS_MATRIX_MAX = 2048


def _nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "Union"
) -> np.ndarray:
    """Greedy NMS; "Union" as torchvision's ``nms`` (no +1), "Min" as facenet's numpy one.

    The overlaps of all pairs are computed at once (the same float operations as box by
    box, so the same result); only the boxes that overlap a later one are then walked."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    if len(boxes) > _NMS_MATRIX_MAX:
        return _nms_loop(boxes, scores, threshold, method)
    order = np.argsort(-scores, kind="stable")
    b = boxes[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    plus = 1.0 if method == "Min" else 0.0
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    w = np.maximum(0.0, np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1) + plus)
    h = np.maximum(0.0, np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1) + plus)
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "Min":
            overlap = inter / np.minimum(area[:, None], area)
        else:
            overlap = inter / (area[:, None] + area - inter)
    # Box j (after i in score order) goes when a kept i overlaps it more than the threshold
    # (NaN overlaps too, as in the box by box loop, which keeps only "<= threshold").
    gone = np.triu(~(overlap <= threshold), k=1)
    suppressed = np.zeros(len(b), dtype=bool)
    for i in np.flatnonzero(gone.any(axis=1)):
        if not suppressed[i]:
            suppressed |= gone[i]
    return order[~suppressed].astype(np.int64)


def _nms_loop(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str) -> np.ndarray:
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    plus = 1.0 if method == "Min" else 0.0
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + plus)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + plus)
        inter = w * h
        if method == "Min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _rerec(boxes: np.ndarray) -> np.ndarray:
    """Boxes made square around their centres (their longer side)."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _bbreg(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0] += reg[:, 0] * w
    boxes[:, 1] += reg[:, 1] * h
    boxes[:, 2] += reg[:, 2] * w
    boxes[:, 3] += reg[:, 3] * h
    return boxes


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each box's part of the frame (clipped to it, as facenet-pytorch does), area-resized to
    ``size``; returns the stack and the indices of the boxes that had any pixels."""
    h, w = image.shape[:2]
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x = np.maximum(b[:, 0], 1)
    y = np.maximum(b[:, 1], 1)
    ex = np.minimum(b[:, 2], w)
    ey = np.minimum(b[:, 3], h)
    ok = (ey > y - 1) & (ex > x - 1)
    kept = np.flatnonzero(ok)
    out = np.empty((len(kept), size, size, 3), np.float32)
    spans = zip(
        (y - 1)[ok].tolist(), ey[ok].tolist(), (x - 1)[ok].tolist(), ex[ok].tolist(), strict=True
    )
    for k, (top, bottom, left, right) in enumerate(spans):
        crop = image[top:bottom, left:right].astype(np.float32)
        cv2.resize(crop, (size, size), dst=out[k], interpolation=cv2.INTER_AREA)
    return out, kept.astype(np.int64)


def detect_faces(
    image: np.ndarray,
    *,
    pnet: NetRunner,
    rnet: NetRunner,
    onet: NetRunner,
    params: MtcnnParams = MtcnnParams(),
    stage_times: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces in one BGR ``uint8`` frame: boxes (N, 4) xyxy, probabilities (N,), landmarks
    (N, 5, 2), largest box first. ``stage_times`` (if given) accumulates seconds by stage."""
    import time

    clock = time.perf_counter
    times = stage_times if stage_times is not None else {}

    def add(stage: str, started: float) -> float:
        now = clock()
        times[stage] = times.get(stage, 0.0) + now - started
        return now

    t = clock()
    h, w = image.shape[:2]
    t1, t2, t3 = params.thresholds
    found = []
    halves = _halves(image)
    for scale in pyramid_scales(h, w, params):
        hs, ws = int(h * scale + 1), int(w * scale + 1)
        small = cv2.resize(_source_for(halves, ws, hs), (ws, hs), interpolation=cv2.INTER_AREA)
        t = add("pyramid", t)
        reg, prob = pnet(small[None])
        t = add("pnet", t)
        p = prob[0, 1]
        ys, xs = np.nonzero(p >= t1)
        if len(ys):
            q1x = np.floor((2 * xs + 1) / scale)
            q1y = np.floor((2 * ys + 1) / scale)
            q2x = np.floor((2 * xs + 12) / scale)
            q2y = np.floor((2 * ys + 12) / scale)
            boxes = np.stack(
                [q1x, q1y, q2x, q2y, p[ys, xs], *(reg[0, i, ys, xs] for i in range(4))], axis=1
            ).astype(np.float32)
            found.append(boxes[_nms(boxes[:, :4], boxes[:, 4], 0.5)])
        t = add("pnet_boxes", t)
    empty = (np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty((0, 5, 2), np.float32))
    if not found:
        return empty
    boxes = np.concatenate(found)
    boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7)]
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    boxes = np.stack(
        [
            boxes[:, 0] + boxes[:, 5] * regw,
            boxes[:, 1] + boxes[:, 6] * regh,
            boxes[:, 2] + boxes[:, 7] * regw,
            boxes[:, 3] + boxes[:, 8] * regh,
            boxes[:, 4],
        ],
        axis=1,
    )
    boxes = _rerec(boxes)
    t = add("pnet_boxes", t)

    # Second stage: R-Net on 24 px crops of every candidate.
    crops, kept = _crops(image, boxes, 24)
    boxes = boxes[kept]
    t = add("crops", t)
    if not len(boxes):
        return empty
    reg, prob = rnet(crops)
    t = add("rnet", t)
    score = prob[:, 1]
    ok = score > t2
    boxes = np.concatenate([boxes[ok, :4], score[ok, None]], axis=1)
    reg = reg[ok]
    pick = _nms(boxes[:, :4], boxes[:, 4], 0.7)
    boxes = _rerec(_bbreg(boxes[pick], reg[pick]))
    t = add("rnet_boxes", t)

    # Third stage: O-Net on 48 px crops; landmarks.
    crops, kept = _crops(image, boxes, 48)
    boxes = boxes[kept]
    t = add("crops", t)
    if not len(boxes):
        return empty
    reg, marks, prob = onet(crops)
    t = add("onet", t)
    score = prob[:, 2 - 1]
    ok = score > t3
    boxes = np.concatenate([boxes[ok, :4], score[ok, None]], axis=1)
    reg, marks = reg[ok], marks[ok]
    bw = boxes[:, 2] - boxes[:, 0] + 1
    bh = boxes[:, 3] - boxes[:, 1] + 1
    px = bw[:, None] * marks[:, :5] + boxes[:, 0:1] - 1
    py = bh[:, None] * marks[:, 5:10] + boxes[:, 1:2] - 1
    points = np.stack([px, py], axis=2)
    boxes = _bbreg(boxes, reg)
    pick = _nms(boxes[:, :4], boxes[:, 4], 0.7, "Min")
    boxes, points = boxes[pick], points[pick]
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
    boxes, points = boxes[order], points[order]
    add("onet_boxes", t)
    return (
        boxes[:, :4].astype(np.float32),
        boxes[:, 4].astype(np.float32),
        points.astype(np.float32),
    )


def torch_runner(net: torch.nn.Module) -> NetRunner:
    """A net on PyTorch behind the runners' contract (BGR NHWC in, normalised here)."""
    import torch

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            return [o.numpy() for o in net(torch.from_numpy(_normalise(x)))]

    return run


def openvino_runners(
    nets: Callable[[], dict[str, torch.nn.Module]],
    *,
    cache: Path | None = None,
    config: dict[str, Any] | None = None,
    int8_cache: Path | None = None,
    int8: bool = False,
) -> tuple[dict[str, NetRunner], tuple[str, ...]]:
    """The three nets on OpenVINO (any batch; P-Net any size), compiled for the CPU, each
    taking what ``detect_faces`` hands it (BGR NHWC, see ``with_preprocessing``), and the
    names of those that run int8.

    ``nets`` gives facenet-pytorch's nets; it is called only when a net is not converted yet
    (a torch trace, about a second), whose result is saved in ``cache`` when given. With
    ``int8``, the nets of INT8_NETS run quantized (``int8_models``, kept in ``int8_cache``);
    where that cannot be done (no ``nncf``, no calibration photos, NNCF failing) they stay
    fp32."""
    import openvino as ov

    core = ov.Core()
    if int8 and int8_cache is not None:
        quantized = _read_models(core, int8_cache, INT8_NETS)
        if quantized is not None:  # the int8 nets need no fp32 twin
            fp32 = fp32_models(core, nets, cache, [n for n in NETS if n not in quantized])
            runners = {
                name: compile_runner(core, model, name, config)
                for name, model in {**fp32, **quantized}.items()
            }
            return runners, tuple(quantized)
    models = fp32_models(core, nets, cache)
    runners = {name: compile_runner(core, model, name, config) for name, model in models.items()}
    if not int8:
        return runners, ()
    try:
        quantized = int8_models(core, models, runners, int8_cache)
    except Exception as exc:  # noqa: BLE001 - any NNCF failure leaves the nets as they were
        import structlog

        structlog.get_logger("vidwatch.detectors").warning(
            "mtcnn_int8_failed", error=f"{type(exc).__name__}: {exc}"
        )
        return runners, ()
    for name, model in quantized.items():
        runners[name] = compile_runner(core, model, name, config)
    return runners, tuple(quantized)


NETS = ("pnet", "rnet", "onet")


def fp32_models(
    core: ov.Core,
    nets: Callable[[], dict[str, torch.nn.Module]],
    cache: Path | None,
    names: Sequence[str] = NETS,
) -> dict[str, ov.Model]:
    """The three nets as OpenVINO models (fp32, without pre-processing), read from ``cache``
    or converted from ``nets()`` (and saved there)."""
    import openvino as ov

    out: dict[str, ov.Model] = {}
    torch_nets: dict[str, torch.nn.Module] | None = None
    for name in names:
        xml = cache / f"{name}.xml" if cache is not None else None
        if xml is not None and xml.is_file():
            out[name] = core.read_model(str(xml))
            continue
        import torch

        from vidwatch.detectors.quiet import export_warnings_silenced

        if torch_nets is None:
            torch_nets = nets()
        with export_warnings_silenced():  # the conversion traces with torch.jit
            model = ov.convert_model(
                torch_nets[name].eval(),
                example_input=torch.zeros(_EXAMPLES[name]),
                input=[_SHAPES[name]],
            )
        if xml is not None:
            _save(ov, model, xml)
        out[name] = model
    return out


def _plain_max_pools(model: ov.Model) -> ov.Model:
    """Torch's max pools come converted with an unused indices output (MaxPool-14, rounding
    ``ceil_torch``); as opset1 pools (``ceil``: the same windows without padding) the CPU
    plugin keeps int8 through them and computes no indices. The values are the same."""
    import openvino.opset1 as opset1

    for op in model.get_ordered_ops():
        if op.get_type_name() != "MaxPool" or op.get_type_info().version_id == "opset1":
            continue
        a = op.get_attributes()
        if (
            len(op.outputs()) != 2
            or op.output(1).get_target_inputs()
            or any(a["pads_begin"])
            or any(a["pads_end"])
            or any(d != 1 for d in a["dilations"])
        ):
            continue
        rounding = {"ceil_torch": "ceil"}.get(a["rounding_type"], a["rounding_type"])
        pool = opset1.max_pool(
            op.input_value(0), a["strides"], [0, 0], [0, 0], a["kernel"], rounding
        )
        pool.set_friendly_name(op.get_friendly_name())
        op.output(0).replace(pool.output(0))
    model.validate_nodes_and_infer_types()
    return model


def with_preprocessing(model: ov.Model, name: str) -> ov.Model:
    """``model`` taking BGR NHWC images (``uint8`` for P-Net's pyramid scales, ``float32``
    for the area-resized crops of R-Net and O-Net) and doing, inside the graph, what the
    nets were trained on: RGB, NCHW, ``(x - 127.5) / 128`` (== ``* 0.0078125`` exactly)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(_plain_max_pools(model))
    put = ppp.input()
    put.tensor().set_element_type(ov.Type.u8 if name == "pnet" else ov.Type.f32).set_layout(
        ov.Layout("NHWC")
    )
    put.model().set_layout(ov.Layout("NCHW"))
    put.preprocess().convert_element_type(ov.Type.f32).reverse_channels().mean(127.5).scale(128.0)
    return ppp.build()


def compile_runner(
    core: ov.Core, model: ov.Model, name: str, config: dict[str, Any] | None
) -> NetRunner:
    """``model`` (without pre-processing) compiled for the CPU in fp32, pre-processing added."""
    compiled = core.compile_model(
        with_preprocessing(model.clone(), name),
        "CPU",
        {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", **(config or {})},
    )
    return _ov_runner(compiled.create_infer_request(), len(compiled.outputs))


def _ov_runner(request: ov.InferRequest, n_out: int) -> NetRunner:
    def run(x: np.ndarray) -> list[np.ndarray]:
        res = request.infer({0: x})
        return [np.array(res[i]) for i in range(n_out)]

    return run


_EXAMPLES = {"pnet": (1, 3, 64, 64), "rnet": (4, 3, 24, 24), "onet": (4, 3, 48, 48)}
_SHAPES = {"pnet": [-1, 3, -1, -1], "rnet": [-1, 3, 24, 24], "onet": [-1, 3, 48, 48]}


def _save(ov: ModuleType, model: ov.Model, xml: Path) -> None:
    """Write the converted net beside its siblings, atomically (another process may too)."""
    import os
    import tempfile

    try:
        xml.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".convert-") as tmp:
            part = Path(tmp) / xml.name
            ov.save_model(model, str(part), compress_to_fp16=False)
            os.replace(part.with_suffix(".bin"), xml.with_suffix(".bin"))
            os.replace(part, xml)
    except OSError:
        pass  # no cache: convert again next start


CALIBRATION_IMAGES = ("zidane.jpg", "bus.jpg")
CALIBRATION_SIDES = (360, 540, 720, 1080)


def _calibration_files() -> list[Path]:
    """The sample photos Ultralytics ships (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.origin is None:
        return []
    files = [Path(spec.origin).parent / "assets" / name for name in CALIBRATION_IMAGES]
    return [f for f in files if f.is_file()]


def calibration_images() -> list[np.ndarray]:
    """Calibration frames for int8: the sample photos Ultralytics ships (people and their
    faces, on every host that runs YOLO) with their short side at CALIBRATION_SIDES."""
    out = []
    for path in _calibration_files():
        img = cv2.imread(str(path))
        if img is None:
            continue
        for side in CALIBRATION_SIDES:
            f = side / min(img.shape[:2])
            size = (round(img.shape[1] * f), round(img.shape[0] * f))
            how = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
            out.append(cv2.resize(img, size, interpolation=how))
    return out


def recorded_inputs(
    runners: dict[str, NetRunner], images: Sequence[np.ndarray], params: MtcnnParams
) -> dict[str, list[np.ndarray]]:
    """Each net's inputs (as its runner gets them) while ``detect_faces`` runs on ``images``."""
    seen: dict[str, list[np.ndarray]] = {name: [] for name in NETS}

    def recording(name: str) -> NetRunner:
        def run(x: np.ndarray) -> Sequence[np.ndarray]:
            seen[name].append(x.copy())
            return runners[name](x)

        return run

    for img in images:
        detect_faces(
            img,
            pnet=recording("pnet"),
            rnet=recording("rnet"),
            onet=recording("onet"),
            params=params,
        )
    return seen


# int8 where it keeps the faces (docs/performance.md): P-Net, most of MTCNN's time, and
# R-Net. O-Net (about 2 ms a frame) gives the final boxes and landmarks: it stays fp32.
INT8_NETS = ("pnet", "rnet")
INT8_RECIPE = "mixed-heads-fp32-v1"
"""How the int8 nets are made (part of their cache key): NNCF's MIXED preset (symmetric
weights, asymmetric activations) with fast bias correction, the convolutions that give the
nets' outputs left in fp32, the calibration of ``int8_inputs``."""


def int8_key() -> str | None:
    """What an int8 net depends on besides the weights: NNCF's and OpenVINO's versions, the
    recipe and the calibration photos (by content); None when NNCF or the photos are
    missing (the nets then stay fp32)."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from vidwatch.detectors.weights import sha256_of

    try:
        versions = f"nncf{version('nncf')}-openvino{version('openvino')}"
    except PackageNotFoundError:
        return None
    files = _calibration_files()
    if len(files) != len(CALIBRATION_IMAGES):
        return None
    what = [INT8_RECIPE, *INT8_NETS, *map(str, CALIBRATION_SIDES), *(sha256_of(f) for f in files)]
    return f"{versions}-{hashlib.sha256(' '.join(what).encode()).hexdigest()[:16]}"


def _read_models(core: ov.Core, folder: Path, names: Sequence[str]) -> dict[str, ov.Model] | None:
    xmls = {name: folder / f"{name}.xml" for name in names}
    if not all(xml.is_file() and xml.with_suffix(".bin").is_file() for xml in xmls.values()):
        return None
    return {name: core.read_model(str(xml)) for name, xml in xmls.items()}


def int8_models(
    core: ov.Core,
    models: dict[str, ov.Model],
    runners: dict[str, NetRunner],
    cache: Path | None,
) -> dict[str, ov.Model]:
    """INT8_NETS quantized (without pre-processing, like ``models``): read from ``cache``,
    or made from ``models`` calibrated on the nets' own inputs (``runners`` running
    ``detect_faces`` on ``calibration_images``) and saved there. Empty when NNCF or the
    calibration photos are missing."""
    import openvino as ov

    if cache is not None and (done := _read_models(core, cache, INT8_NETS)) is not None:
        return done
    if int8_key() is None:
        return {}
    inputs = int8_inputs(runners)
    out = {name: _quantized(models[name], inputs[name]) for name in INT8_NETS}
    if cache is not None:
        for name, model in out.items():
            _save(ov, model, cache / f"{name}.xml")
    return out


def int8_inputs(runners: dict[str, NetRunner]) -> dict[str, list[np.ndarray]]:
    """Each net's calibration batches: its real inputs on the calibration photos,
    normalised as the net without pre-processing takes them, crops 32 to a batch."""
    recorded = recorded_inputs(runners, calibration_images(), MtcnnParams())
    out: dict[str, list[np.ndarray]] = {}
    for name, batches in recorded.items():
        step = 1 if name == "pnet" else 32
        out[name] = [_normalise(b[i : i + step]) for b in batches for i in range(0, len(b), step)]
    return out


def _quantized(model: ov.Model, data: list[np.ndarray]) -> ov.Model:
    """``model`` through NNCF's post-training quantization, quietly and without telemetry
    (NNCF sends usage events unless NNCF_CI is set when it is first imported)."""
    import contextlib
    import io
    import logging
    import os

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        before = os.environ.get("NNCF_CI")
        os.environ["NNCF_CI"] = "1"
        try:
            import nncf
        finally:
            if before is None:
                del os.environ["NNCF_CI"]
            else:
                os.environ["NNCF_CI"] = before
        nncf.set_log_level(logging.ERROR)
        plain = _plain_max_pools(model.clone())
        return nncf.quantize(
            plain,
            nncf.Dataset(data),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(data),
            ignored_scope=nncf.IgnoredScope(names=_head_convolutions(plain)),
        )


def _head_convolutions(model: ov.Model) -> list[str]:
    """The convolutions whose outputs are the net's (through a softmax, a flatten...)."""
    names = []
    for result in model.get_results():
        node = result.input_value(0).get_node()
        while node.get_type_name() not in ("Convolution", "MatMul", "Parameter"):
            node = node.input_value(0).get_node()
        if node.get_type_name() != "Parameter":
            names.append(node.get_friendly_name())
    return names
