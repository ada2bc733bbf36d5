"""A YOLO export run on OpenVINO without Ultralytics or PyTorch in the process.

Ultralytics' predictor wraps an exported model in PyTorch tensors: loading it imports torch,
torchvision and Ultralytics (most of a start-up, docs/performance.md), and every frame goes
through torch for its letterbox, NMS and masks. This runner takes the same export (made
once by Ultralytics' exporter, ``backends.exported_yolo``) and does the same steps with
OpenCV and numpy:

- the letterbox of Ultralytics' predictor for a dynamic export: the frame scaled by
  ``min(640 / h, 640 / w)`` (linear), padded with grey 114 to the next multiple of the
  stride, centred; scaled to [0, 1], BGR to RGB, NCHW;
- class-aware greedy NMS at IoU 0.7 over the boxes above the confidence, best class only,
  at most 300, by falling score;
- masks from the prototypes (coefficients times prototypes, upsampled linearly to the input,
  positive, cut to the box), detections whose mask is empty dropped, boxes and outline
  points mapped back to the frame;
- the outline: the external contours of the mask, joined into one path where there are
  several, as Ultralytics joins them (each to the next at their closest points).

Tests hold it to Ultralytics' own OpenVINO predictor on the shared media (same boxes,
classes and scores; outlines covering the same pixels): tests/detectors/test_backends.py.
An export it does not know (an end-to-end head, a task other than detect or segment) is
refused with ``Unsupported`` and runs through Ultralytics instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidwatch.detectors.nms import nms

IOU = 0.7
MAX_DET = 300
MAX_NMS = 30000
MAX_WH = 7680.0
PAD_VALUE = 114
CV_CN_MAX = int(getattr(cv2, "CV_CN_MAX", 128))
MAX_SHAPES = 4
"""Input sizes a runner compiles a fixed-shape model for; further sizes run dynamic."""


class Unsupported(Exception):
    """This export is not one the runner reproduces; Ultralytics runs it."""


@dataclass(frozen=True)
class Found:
    """One frame's detections in frame pixels, by falling score."""

    boxes: np.ndarray  # (n, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (n,) float32
    classes: np.ndarray  # (n,) int64
    outlines: list[np.ndarray] | None  # per detection (k, 2) float32; None for detect models


def read_metadata(folder: Path) -> dict[str, Any]:
    import yaml

    with (folder / "metadata.yaml").open(encoding="utf-8") as f:
        meta: dict[str, Any] = yaml.safe_load(f)
    return meta


class OpenVinoYolo:
    def __init__(self, folder: Path, *, confidence: float, config: dict[str, Any]) -> None:
        import openvino as ov

        meta = read_metadata(folder)
        self.task = str(meta.get("task", ""))
        if self.task not in ("detect", "segment") or meta.get("end2end"):
            raise Unsupported(f"task {self.task!r}, end2end {meta.get('end2end')!r}")
        if not meta.get("dynamic", True):
            raise Unsupported("a fixed-shape export")
        self.names: dict[int, str] = {int(k): str(v) for k, v in meta["names"].items()}
        self.stride = int(meta.get("stride", 32))
        size = meta.get("imgsz", [640, 640])
        self.imgsz = (int(size[0]), int(size[1])) if isinstance(size, list) else (size, size)
        self.confidence = confidence
        self._core = ov.Core()
        xml = next(folder.glob("*.xml"))
        model = self._core.read_model(str(xml))
        if len(model.outputs) != (2 if self.task == "segment" else 1):
            raise Unsupported(f"{len(model.outputs)} outputs for a {self.task} model")
        self._model = model
        self._config = {"PERFORMANCE_HINT": "LATENCY", **config, "INFERENCE_PRECISION_HINT": "f32"}
        self._requests: dict[tuple[int, int], Any] = {}
        """An infer request per input size (batch 1), compiled as frames of that size come."""
        self._dynamic: Any = None
        # 16:9 landscape, the common frame, compiled now (from the blob cache on a second
        # start); other sizes when they first come.
        self.compiled = self._request_for(self.input_size(9, 16), cached=True).get_compiled_model()
        """The start-up shape's compiled model (its properties are every shape's)."""
        self.stage_times: dict[str, float] | None = None
        """Seconds by stage (letterbox, inference, postprocess), summed, when a dict."""

    def _fitted(self, h: int, w: int) -> tuple[int, int]:
        """(width, height) of a frame of ``h`` x ``w`` scaled to fit ``imgsz``."""
        th, tw = self.imgsz
        r = min(th / h, tw / w)
        return max(round(w * r), 1), max(round(h * r), 1)

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """The letterboxed input's (height, width) for a frame of ``h`` x ``w``."""
        th, tw = self.imgsz
        new_w, new_h = self._fitted(h, w)
        return new_h + (th - new_h) % self.stride, new_w + (tw - new_w) % self.stride

    def _request_for(self, hw: tuple[int, int], *, cached: bool = False) -> Any:
        """The infer request for inputs of size ``hw``: a model compiled for that one shape.

        A fixed shape runs about 5% faster than the dynamic export with the same outputs to
        the bit (docs/performance.md). A size met during a job compiles without the blob
        cache (about 0.2 s): OpenVINO's compile with CACHE_DIR sets the process locale to C
        while it hashes the model, which would break text decoding in other threads; the
        start-up shape uses the cache. Past MAX_SHAPES sizes, the dynamic model serves."""
        request = self._requests.get(hw)
        if request is not None:
            return request
        from vidwatch.detectors.backends import compile_on_cpu

        config = dict(self._config)
        if not cached:
            config.pop("CACHE_DIR", None)
        if len(self._requests) >= MAX_SHAPES:
            if self._dynamic is None:
                compiled = compile_on_cpu(self._core, self._model, config)
                self._dynamic = compiled.create_infer_request()
            return self._dynamic
        model = self._model.clone()
        model.reshape({0: [1, 3, *hw]})
        request = compile_on_cpu(self._core, model, config).create_infer_request()
        self._requests[hw] = request
        return request

    # --- the steps --------------------------------------------------------------------------
    def letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, tuple[float, float, int, int]]:
        """The model's input for ``frame`` and how to map back: (gain_x, gain_y, pad_x, pad_y)."""
        h, w = frame.shape[:2]
        th, tw = self.imgsz
        new_w, new_h = self._fitted(h, w)
        dw, dh = (tw - new_w) % self.stride / 2, (th - new_h) % self.stride / 2
        top, bottom = round(dh - 0.1), round(dh + 0.1)
        left, right = round(dw - 0.1), round(dw + 0.1)
        image = frame
        if (w, h) != (new_w, new_h):
            image = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        if top or bottom or left or right:
            image = cv2.copyMakeBorder(
                image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
            )
        return image, (new_w / w, new_h / h, left, top)

    def predict(self, frames: list[np.ndarray]) -> list[Found]:
        if not frames:
            return []
        started = time.perf_counter()
        boxed = [self.letterbox(f) for f in frames]
        inputs = [to_input(image[None]) for image, _ in boxed]
        letterboxed = time.perf_counter()
        outputs = []
        for (image, _), x in zip(boxed, inputs, strict=True):  # batch 1: as fast a frame as 4
            request = self._request_for(image.shape[:2])
            request.infer({0: x})
            outputs.append(
                tuple(
                    np.array(request.get_output_tensor(k).data[0])
                    for k in range(2 if self.task == "segment" else 1)
                )
            )
        inferred = time.perf_counter()
        out = []
        for frame, (image, mapping), got in zip(frames, boxed, outputs, strict=True):
            proto = got[1] if len(got) > 1 else None
            out.append(self._one(got[0], proto, image.shape[:2], frame.shape[:2], mapping))
        if self.stage_times is not None:
            times = self.stage_times
            for stage, seconds in (
                ("letterbox", letterboxed - started),
                ("inference", inferred - letterboxed),
                ("postprocess", time.perf_counter() - inferred),
            ):
                times[stage] = times.get(stage, 0.0) + seconds
        return out

    def _one(
        self,
        pred: np.ndarray,
        proto: np.ndarray | None,
        input_hw: tuple[int, int],
        frame_hw: tuple[int, int],
        mapping: tuple[float, float, int, int],
    ) -> Found:
        nc = len(self.names) if proto is not None else pred.shape[0] - 4
        scores_all = pred[4 : 4 + nc]
        best = scores_all.max(axis=0)
        keep = np.nonzero(best > self.confidence)[0]
        if len(keep) > MAX_NMS:
            keep = keep[np.argsort(-best[keep], kind="stable")[:MAX_NMS]]
        x = pred[:, keep].T  # (n, 4 + nc + extra)
        xywh = x[:, :4]
        boxes = np.empty_like(xywh)
        boxes[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
        boxes[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
        classes = x[:, 4 : 4 + nc].argmax(axis=1)
        scores = best[keep]
        # Class-aware: boxes of other classes are moved apart. Greedy NMS as torchvision's.
        shifted = boxes + (classes[:, None] * MAX_WH).astype(np.float32)
        picked = nms(shifted, scores, IOU, "Union")[:MAX_DET]
        boxes, scores, classes = boxes[picked], scores[picked], classes[picked]
        outlines = None
        if proto is not None:
            masks = masks_of(proto, x[picked, 4 + nc :], boxes, input_hw)
            filled = masks.reshape(len(masks), -1).any(axis=1) if len(masks) else np.empty(0, bool)
            boxes, scores, classes, masks = (
                boxes[filled],
                scores[filled],
                classes[filled],
                masks[filled],
            )
            outlines = [to_frame(outline_of(m), frame_hw, mapping) for m in masks]
        boxes = to_frame(boxes.reshape(-1, 2), frame_hw, mapping).reshape(-1, 4)
        return Found(boxes.astype(np.float32), scores.astype(np.float32), classes, outlines)


def to_input(images: np.ndarray) -> np.ndarray:
    """BGR NHWC uint8 to RGB NCHW float32 in [0, 1], divided as Ultralytics divides. Done
    here rather than in the OpenVINO graph: in the graph it cost 4 ms more a 384x640 frame."""
    x = np.ascontiguousarray(images[..., ::-1].transpose(0, 3, 1, 2)).astype(np.float32)
    x /= np.float32(255.0)
    return x


def masks_of(
    proto: np.ndarray, coefficients: np.ndarray, boxes: np.ndarray, input_hw: tuple[int, int]
) -> np.ndarray:
    """Binary masks (n, h, w) at the model's input size, each cut to its box."""
    c, mh, mw = proto.shape
    n = len(coefficients)
    h, w = input_hw
    if n == 0:
        return np.zeros((0, h, w), np.uint8)
    logits = (coefficients.astype(np.float32) @ proto.reshape(c, -1)).reshape(n, mh, mw)
    # HWC with one channel per detection, at most CV_CN_MAX channels a call (128 in
    # OpenCV 5; more fail in cv2.resize).
    up = np.empty((n, h, w), np.float32)
    for start in range(0, n, CV_CN_MAX):
        part = np.ascontiguousarray(logits[start : start + CV_CN_MAX].transpose(1, 2, 0))
        scaled = cv2.resize(part, (w, h), interpolation=cv2.INTER_LINEAR)
        up[start : start + CV_CN_MAX] = scaled.reshape(h, w, -1).transpose(2, 0, 1)
    masks = (up > 0.0).astype(np.uint8)
    cols = np.arange(w, dtype=np.float32)[None, None, :]
    rows = np.arange(h, dtype=np.float32)[None, :, None]
    x1, y1, x2, y2 = (boxes[:, k, None, None] for k in range(4))
    masks *= ((cols >= x1) & (cols < x2)).astype(np.uint8)
    masks *= ((rows >= y1) & (rows < y2)).astype(np.uint8)
    return masks


def outline_of(mask: np.ndarray) -> np.ndarray:
    """The mask's external contours as one ring of points (float32, input pixels)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2), np.float32)
    parts = [c.reshape(-1, 2) for c in contours]
    if len(parts) == 1:
        return parts[0].astype(np.float32)
    return join_rings(parts).astype(np.float32)


def join_rings(parts: list[np.ndarray]) -> np.ndarray:
    """Several rings as one path, joined where consecutive rings come closest, the way
    Ultralytics joins the parts of a mask (``masks2segments``, strategy "all"): the first
    and last rings whole; each ring between them walked from where the previous one joins
    it to where it joins the next (reversed first where that is shorter to write as a
    forward walk); then, coming back, the rest of each middle ring."""
    rings = [np.asarray(p).reshape(-1, 2) for p in parts]
    last = len(rings) - 1
    # ends[k]: where ring k meets the ring before it (if any), then the ring after it.
    ends: list[list[int]] = [[] for _ in rings]
    for k in range(1, len(rings)):
        a, b = rings[k - 1], rings[k]
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        ends[k - 1].append(int(i))
        ends[k].append(int(j))
    walked: list[np.ndarray] = []
    closed: list[np.ndarray] = []
    for k, ring in enumerate(rings):
        at = ends[k]
        if len(at) == 2 and at[0] > at[1]:
            ring = ring[::-1]
            at = [len(ring) - 1 - x for x in at]
        ring = np.roll(ring, -at[0], axis=0)
        ring = np.concatenate([ring, ring[:1]])
        closed.append(ring)
        walked.append(ring if k in (0, last) else ring[: at[1] - at[0] + 1])
    for k in range(last - 1, 0, -1):
        walked.append(closed[k][abs(ends[k][1] - ends[k][0]) :])
    return np.concatenate(walked)


def to_frame(
    points: np.ndarray, frame_hw: tuple[int, int], mapping: tuple[float, float, int, int]
) -> np.ndarray:
    """Input pixels (x, y) back to the frame's, clipped to it."""
    gain_x, gain_y, pad_x, pad_y = mapping
    h, w = frame_hw
    out = points.astype(np.float32, copy=True)
    out[:, 0] = np.clip((out[:, 0] - pad_x) / gain_x, 0, w)
    out[:, 1] = np.clip((out[:, 1] - pad_y) / gain_y, 0, h)
    return out
