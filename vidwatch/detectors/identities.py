"""Face descriptors: dlib's 5-point shape predictor aligns each MTCNN box, dlib's
face-recognition ResNet turns the aligned face into a 128-d descriptor (distance below about
0.6: the same person).

The weights come from the ``face-recognition-models`` package (MIT). Its ``__init__``
imports ``pkg_resources``, which current setuptools no longer ships, so the package is
never imported: ``weights.package_folder`` finds its folder without running it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidwatch.config import ConfigError
from vidwatch.detectors.types import Box, ModelInfo
from vidwatch.detectors.weights import package_folder, sha256_of

MODELS_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"


def model_files() -> tuple[Path, Path]:
    """The shape predictor and the ResNet weights, found without importing their package."""
    package = package_folder(MODELS_PACKAGE)
    if package is None:
        raise ConfigError(
            "FACE_IDENTITIES=true but the face-recognition-models package is not installed; "
            "install it or set FACE_IDENTITIES=false"
        )
    folder = package / "models"
    paths = (folder / SHAPE_PREDICTOR, folder / RECOGNITION_MODEL)
    for path in paths:
        if not path.is_file():
            raise ConfigError(
                f"FACE_IDENTITIES=true but {path.name} is missing from face-recognition-models; "
                "reinstall it or set FACE_IDENTITIES=false"
            )
    return paths


class DlibFaceDescriber:
    """Loads both dlib models once per process. A dlib network keeps its layer outputs in
    the object itself, so jobs running at once (JOB_CONCURRENCY > 1) take turns."""

    def __init__(self) -> None:
        import dlib

        predictor, recognition = model_files()
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(predictor))
        self._model = dlib.face_recognition_model_v1(str(recognition))
        self._lock = threading.Lock()
        self.infos: tuple[ModelInfo, ...] = (
            ModelInfo(
                role="identities",
                name=RECOGNITION_MODEL,
                sha256=sha256_of(recognition),
                extra={
                    "alignment": SHAPE_PREDICTOR,
                    "alignment_sha256": sha256_of(predictor),
                    "package": f"dlib {dlib.__version__}",
                },
            ),
        )

    def describe(self, image_bgr: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        """One unit-free 128-d float32 descriptor per box, in order."""
        if not boxes:
            return []
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])  # dlib wants RGB
        shapes = self._dlib.full_object_detections()
        with self._lock:
            for x1, y1, x2, y2 in boxes:
                rect = self._dlib.rectangle(round(x1), round(y1), round(x2), round(y2))
                shapes.append(self._predictor(rgb, rect))
            found = self._model.compute_face_descriptor(rgb, shapes, 0)
        return [np.asarray(d, dtype=np.float32) for d in found]
