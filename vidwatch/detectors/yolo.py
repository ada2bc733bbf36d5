"""Objects and instance masks with Ultralytics YOLO.

One model can serve both lists: where DETECT_MODEL and SEGMENT_MODEL name the same
weights, one inference fills ``objects`` and ``segments``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vidwatch.detectors.types import Detections, ModelInfo, ObjectDetection
from vidwatch.detectors.weights import sha256_of

# Polygons are simplified to within this many pixels: outlines stay exact to the eye and
# per-frame documents stay small.
POLYGON_EPSILON_PX = 1.0


class YoloDetector:
    """Runs one YOLO model; ``roles`` says which lists it fills (objects, segments)."""

    def __init__(
        self,
        weights: Path,
        *,
        name: str,
        roles: tuple[str, ...],
        confidence: float,
        device: str,
        imgsz: int = 640,
    ) -> None:
        from ultralytics import YOLO

        self._model = YOLO(str(weights))
        self._task = self._model.task
        if "segments" in roles and self._task != "segment":
            raise ValueError(f"{name} is a {self._task} model, not a segmentation model")
        self._roles = roles
        self._confidence = confidence
        self._device = device
        self._half = device.startswith("cuda")
        self._imgsz = imgsz
        self._names: dict[int, str] = dict(self._model.names)
        digest = sha256_of(weights)
        self.infos = tuple(
            ModelInfo(
                role={"objects": "detect", "segments": "segment"}[r],
                name=name,
                sha256=digest,
                extra={"task": self._task},
            )
            for r in roles
        )

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        kwargs = {"half": True} if self._half else {}
        results = self._model.predict(
            list(frames),
            conf=self._confidence,
            device=self._device,
            imgsz=self._imgsz,
            verbose=False,
            **kwargs,
        )
        return [self._convert(r) for r in results]

    def _convert(self, result) -> Detections:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections()
        xyxy = boxes.xyxy.cpu().numpy()
        confs = boxes.conf.cpu().numpy()
        classes = boxes.cls.cpu().numpy().astype(int)
        polygons = result.masks.xy if result.masks is not None else None
        objects: list[ObjectDetection] = []
        segments: list[ObjectDetection] = []
        for i, (box, conf, cls) in enumerate(zip(xyxy, confs, classes, strict=True)):
            label = self._names.get(int(cls), str(cls))
            if "objects" in self._roles:
                objects.append(ObjectDetection.make(label, cls, conf, box))
            if "segments" in self._roles and polygons is not None:
                poly = _simplify(polygons[i])
                if len(poly) >= 3:
                    segments.append(ObjectDetection.make(label, cls, conf, box, poly))
        return Detections(objects=tuple(objects), segments=tuple(segments))


def _simplify(points: np.ndarray) -> np.ndarray:
    if len(points) < 4:
        return points
    approx = cv2.approxPolyDP(points.astype(np.float32).reshape(-1, 1, 2), POLYGON_EPSILON_PX, True)
    return approx.reshape(-1, 2)
