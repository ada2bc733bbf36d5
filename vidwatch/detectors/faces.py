"""Faces with facenet-pytorch's MTCNN (its weights ship inside the package)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidwatch.detectors.types import Detections, FaceDetection, ModelInfo
from vidwatch.detectors.weights import sha256_of

# MTCNN's first stage cannot run on images whose short side is under its 12 px window
# after the 20 px minimum face scaling: such frames simply have no faces.
MIN_SIDE_PX = 20


class MtcnnFaceDetector:
    def __init__(self, *, min_confidence: float, device: str, batch: bool = False) -> None:
        import facenet_pytorch
        from facenet_pytorch import MTCNN

        self._mtcnn = MTCNN(keep_all=True, device=device, post_process=False)
        self._min_confidence = min_confidence
        # On the CPU, batching MTCNN is slower than frame by frame (measured in bench/).
        self._batch = batch
        data = Path(facenet_pytorch.__file__).parent / "data"
        weights = sorted(data.glob("*.pt"))
        digest = "+".join(sha256_of(p)[:16] for p in weights) if weights else None
        self.infos: tuple[ModelInfo, ...] = (
            ModelInfo(
                role="faces",
                name="mtcnn",
                sha256=digest,
                extra={"package": f"facenet-pytorch {_version()}"},
            ),
        )

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        if min(h, w) < MIN_SIDE_PX:
            return [Detections() for _ in frames]
        rgb = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]  # MTCNN wants RGB
        if self._batch and len(rgb) > 1:
            boxes, probs, points = self._mtcnn.detect(np.stack(rgb), landmarks=True)
            found = list(zip(boxes, probs, points, strict=True))
        else:
            found = [self._mtcnn.detect(img, landmarks=True) for img in rgb]
        return [self._convert(b, p, pts) for b, p, pts in found]

    def _convert(self, boxes, probs, points) -> Detections:
        if boxes is None:
            return Detections()
        faces = []
        for box, prob, pts in zip(boxes, probs, points, strict=True):
            if prob is None or float(prob) < self._min_confidence:
                continue
            faces.append(FaceDetection.make(min(float(prob), 1.0), box, pts))
        return Detections(faces=tuple(faces))


def _version() -> str:
    from importlib.metadata import version

    return version("facenet-pytorch")
