"""Objects and instance masks with Ultralytics YOLO.

One model can serve both lists: where DETECT_MODEL and SEGMENT_MODEL name the same
weights, one inference fills ``objects`` and ``segments``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vidwatch.detectors.types import Detections, ModelInfo, ObjectDetection
from vidwatch.detectors.weights import sha256_of

if TYPE_CHECKING:
    from ultralytics.engine.results import Results

    from vidwatch.detectors.yolo_openvino import Found as OpenVinoFound
    from vidwatch.detectors.yolo_openvino import OpenVinoYolo

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
        backend: str = "torch",
        cache_dir: Path | None = None,
        openvino_config: dict[str, Any] | None = None,
    ) -> None:
        digest = sha256_of(weights)
        self._native: OpenVinoYolo | None = None
        self._model: Any = None
        if backend == "torch":
            from vidwatch.detectors.quiet import import_yolo

            self._model = import_yolo()(str(weights))
            self._task = self._model.task
        else:
            from vidwatch.detectors.backends import exported_yolo

            if cache_dir is None:
                raise ValueError(f"the {backend} backend needs a cache folder for its export")
            exported, task = exported_yolo(weights, digest, backend, cache_dir)
            self._task = task
            if backend == "openvino":
                self._native = _native_runner(exported, confidence, openvino_config or {})
            if self._native is None:
                from vidwatch.detectors.quiet import import_yolo

                self._model = import_yolo()(str(exported), task=task)
        self.backend = backend
        if "segments" in roles and self._task != "segment":
            raise ValueError(f"{name} is a {self._task} model, not a segmentation model")
        self._roles = roles
        self._confidence = confidence
        self._device = device
        self._half = device.startswith("cuda")
        self._imgsz = imgsz
        if self._model is not None and backend == "openvino":
            # Ultralytics loads the runtime model on the first call (and again whenever a
            # setup argument changes): make it now, with detect()'s own arguments, in fp32.
            with _openvino_compile_config(openvino_config or {}):
                self._predict([np.zeros((64, 64, 3), np.uint8)])
        self._names: dict[int, str] = (
            self._native.names if self._native is not None else dict(self._model.names)
        )
        self.infos = tuple(
            ModelInfo(
                role={"objects": "detect", "segments": "segment"}[r],
                name=name,
                sha256=digest,
                extra={"task": self._task, "backend": backend},
            )
            for r in roles
        )

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        if self._native is not None:
            return [self._convert_found(f) for f in self._native.predict(list(frames))]
        return [self._convert(r) for r in self._predict(frames)]

    def _predict(self, frames: Sequence[np.ndarray]) -> list[Results]:
        kwargs = {"half": True} if self._half else {}
        return list(
            self._model.predict(
                list(frames),
                conf=self._confidence,
                device=self._device,
                imgsz=self._imgsz,
                verbose=False,
                **kwargs,
            )
        )

    @property
    def openvino_model(self) -> Any:
        """The compiled OpenVINO model (None on other backends)."""
        if self._native is not None:
            return self._native.compiled
        if self.backend != "openvino" or self._model.predictor is None:
            return None
        return self._model.predictor.model.backend.ov_compiled_model

    @property
    def openvino_precision(self) -> str | None:
        """The precision the OpenVINO model is compiled for (None on other backends)."""
        compiled = self.openvino_model
        return None if compiled is None else str(compiled.get_property("INFERENCE_PRECISION_HINT"))

    def _convert_found(self, found: OpenVinoFound) -> Detections:
        return self._detections(found.boxes, found.scores, found.classes, found.outlines)

    def _convert(self, result: Results) -> Detections:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections()
        # Ultralytics types these Tensor | ndarray; predict() hands tensors.
        xyxy = boxes.xyxy.cpu().numpy()  # type: ignore[union-attr]
        confs = boxes.conf.cpu().numpy()  # type: ignore[union-attr]
        classes = boxes.cls.cpu().numpy().astype(int)  # type: ignore[union-attr]
        polygons = result.masks.xy if result.masks is not None else None
        return self._detections(xyxy, confs, classes, polygons)

    def _detections(
        self,
        xyxy: np.ndarray,
        confs: np.ndarray,
        classes: np.ndarray,
        polygons: Sequence[np.ndarray] | None,
    ) -> Detections:
        if len(xyxy) == 0:
            return Detections()
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


def _native_runner(
    exported: Path, confidence: float, config: dict[str, Any]
) -> OpenVinoYolo | None:
    """The export on OpenVINO without Ultralytics (yolo_openvino), or None for an export that
    runner does not reproduce (Ultralytics' predictor runs it)."""
    from vidwatch.detectors.yolo_openvino import OpenVinoYolo, Unsupported

    try:
        return OpenVinoYolo(exported, confidence=confidence, config=config)
    except Unsupported:
        return None


@contextlib.contextmanager
def _openvino_compile_config(extra: dict[str, Any]) -> Iterator[None]:
    """While Ultralytics loads an OpenVINO model, compile it in fp32, as PyTorch runs, with
    ``extra`` (threads, pinning, the compiled-blob cache: ``backends.openvino_config``).

    OpenVINO's CPU plugin picks bf16 by itself on CPUs with bf16 instructions (AVX512-BF16,
    AMX), and Ultralytics compiles with that default: boxes then move by more than the 0.98
    IoU / 0.02 confidence the backends must agree to (checked in tests/detectors). Its
    compile call is bound at load time, so later recompiles keep the pinned precision."""
    import openvino as ov

    original = ov.Core.compile_model

    def compile_fp32(
        self: ov.Core,
        model: ov.Model | str | Path,
        device_name: str | None = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ov.CompiledModel:
        from vidwatch.detectors.backends import binding_ready, compiling

        binding_ready()
        config = {**(config or {}), **extra, "INFERENCE_PRECISION_HINT": "f32"}
        with compiling(config):
            if device_name is None:
                return original(self, model, config=config, **kwargs)
            return original(self, model, device_name, config, **kwargs)

    ov.Core.compile_model = compile_fp32
    try:
        yield
    finally:
        ov.Core.compile_model = original


def _simplify(points: np.ndarray) -> np.ndarray:
    if len(points) < 4:
        return points
    approx = cv2.approxPolyDP(points.astype(np.float32).reshape(-1, 1, 2), POLYGON_EPSILON_PX, True)
    return approx.reshape(-1, 2)
