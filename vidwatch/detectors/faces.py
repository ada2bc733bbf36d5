"""Faces with facenet-pytorch's MTCNN (its weights ship inside the package).

On the PyTorch backend, facenet-pytorch's own ``detect``; on OpenVINO (MODEL_BACKEND auto
on a CPU), the same three nets converted to OpenVINO and driven by ``mtcnn.detect_faces``
(the same stages, thresholds and pyramid, without facenet-pytorch's float-tensor overheads).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidwatch.detectors.types import Detections, FaceDetection, ModelInfo
from vidwatch.detectors.weights import package_folder, sha256_of

# MTCNN's first stage cannot run on images whose short side is under its 12 px window
# after the 20 px minimum face scaling: such frames simply have no faces.
MIN_SIDE_PX = 20


class MtcnnFaceDetector:
    def __init__(
        self,
        *,
        min_confidence: float,
        device: str,
        batch: bool = False,
        backend: str = "torch",
        cache_dir: Path | None = None,
        openvino_config: dict[str, Any] | None = None,
        int8: bool = True,
    ) -> None:
        """``int8``: on OpenVINO, P-Net and R-Net run int8 (``mtcnn_openvino.INT8_NETS``,
        quantized once into ``cache_dir``; FACE_INT8, off by default: docs/performance.md);
        False keeps every net fp32."""
        self._min_confidence = min_confidence
        # On the CPU, batching MTCNN is slower than frame by frame (measured in bench/).
        self._batch = batch
        weights = _weights_files()
        digest = "+".join(sha256_of(p)[:16] for p in weights) if weights else None
        self.backend = "openvino" if backend in ("openvino", "onnx") else "torch"
        self._mtcnn: Any = None
        self._runners = None
        self.int8_nets: tuple[str, ...] = ()
        self.stage_times: dict[str, float] | None = None
        if self.backend == "openvino":
            from vidwatch.detectors import backends
            from vidwatch.detectors.mtcnn_openvino import int8_key, openvino_runners

            cache = int8_cache = None
            key = int8_key() if int8 else None
            name = (digest or "mtcnn").replace("+", "-")
            if cache_dir is not None:
                cache = cache_dir / "mtcnn" / f"{name}-openvino"
                if key is not None:
                    int8_cache = cache_dir / "mtcnn-int8" / f"{name}-{key}"
            # facenet-pytorch (and torch) load only when a net is not converted yet.
            self._runners, self.int8_nets = openvino_runners(
                lambda: _facenet_nets(device),
                cache=cache,
                config=openvino_config
                if openvino_config is not None
                else backends.openvino_config(cache_dir),
                int8_cache=int8_cache,
                int8=key is not None,
            )
        else:
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(keep_all=True, device=device, post_process=False)
        self.infos: tuple[ModelInfo, ...] = (
            ModelInfo(
                role="faces",
                name="mtcnn",
                sha256=digest,
                extra={
                    "package": f"facenet-pytorch {_version()}",
                    "backend": self.backend,
                    **({"int8": list(self.int8_nets)} if self.int8_nets else {}),
                },
            ),
        )

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        if min(h, w) < MIN_SIDE_PX:
            return [Detections() for _ in frames]
        if self._runners is not None:
            from vidwatch.detectors.mtcnn import detect_faces

            out = []
            for frame in frames:  # BGR in: detect_faces hands the nets RGB
                boxes, probs, points = detect_faces(
                    frame,
                    pnet=self._runners["pnet"],
                    rnet=self._runners["rnet"],
                    onet=self._runners["onet"],
                    stage_times=self.stage_times,
                )
                out.append(self._convert(boxes, probs, points) if len(boxes) else Detections())
            return out
        rgb = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]  # MTCNN wants RGB
        if self._batch and len(rgb) > 1:
            boxes, probs, points = self._mtcnn.detect(np.stack(rgb), landmarks=True)
            found = list(zip(boxes, probs, points, strict=True))
        else:
            found = [self._mtcnn.detect(img, landmarks=True) for img in rgb]
        return [self._convert(b, p, pts) for b, p, pts in found]

    def _convert(
        self, boxes: np.ndarray | None, probs: np.ndarray, points: np.ndarray | None
    ) -> Detections:
        if boxes is None or points is None:  # facenet-pytorch gives both or neither
            return Detections()
        faces = []
        for box, prob, pts in zip(boxes, probs, points, strict=True):
            if prob is None or float(prob) < self._min_confidence:
                continue
            faces.append(FaceDetection.make(min(float(prob), 1.0), box, pts))
        return Detections(faces=tuple(faces))


def _weights_files() -> list[Path]:
    """facenet-pytorch's MTCNN weights (its ``data/*.pt``), found without importing it."""
    folder = package_folder("facenet_pytorch")
    return sorted((folder / "data").glob("*.pt")) if folder is not None else []


def _facenet_nets(device: str) -> dict[str, Any]:
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device=device, post_process=False)
    return {"pnet": mtcnn.pnet, "rnet": mtcnn.rnet, "onet": mtcnn.onet}


def _version() -> str:
    from importlib.metadata import version

    return version("facenet-pytorch")
