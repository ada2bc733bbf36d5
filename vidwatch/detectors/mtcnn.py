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
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vidwatch.detectors.nms import nms

if TYPE_CHECKING:
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


INPUT_MEAN = 127.5
INPUT_SCALE = 0.0078125
"""The nets' input: (x - INPUT_MEAN) * INPUT_SCALE, RGB (``mtcnn_openvino`` folds it into
their first convolution)."""


def _normalise(images: np.ndarray) -> np.ndarray:
    """BGR NHWC (uint8 or float32) -> float32 RGB NCHW scaled to [-1, 1) as the nets were
    trained (PyTorch's runner, the int8 nets' OpenVINO runners and their calibration)."""
    x = images[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
    x -= INPUT_MEAN
    x *= INPUT_SCALE
    return x


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
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        t = add("pnet_boxes", t)
    empty = (np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty((0, 5, 2), np.float32))
    if not found:
        return empty
    boxes = np.concatenate(found)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
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
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
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
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7, "Min")
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
