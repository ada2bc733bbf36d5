"""Faces of enrolment photos: each photo must be a JPEG or PNG holding exactly one face.

``PhotoFaces`` is what the API and the CLI are given: a callable from a photo's bytes to the
faces in it. ``ModelPhotoFaces`` is the one over the loaded models (MTCNN, then dlib's
descriptor on each box); it imports OpenCV only when called, so the API imports none of
the model libraries (the daemon hands the API one built on the models it loaded anyway).
``enrolment_faces`` checks every photo before anything is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidwatch.errors import VidwatchError
from vidwatch.library.people import EnrolFace

MAX_PHOTO_SIDE = 1600
"""Photos are scaled down to this long side before the face detector (a 24 MP photo would
cost seconds in MTCNN's pyramid and nothing in accuracy)."""
MIN_FACE_PX = 20
"""Faces smaller than this are not counted (too small to describe: a crowd far behind)."""
_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"


class PhotoError(VidwatchError):
    """A photo that cannot enrol anyone: ``not_an_image``, ``no_face`` or ``several_faces``."""

    def __init__(self, code: str, message: str, *, photo: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.photo = photo


@dataclass(frozen=True)
class PhotoFace:
    box_xyxy: tuple[float, float, float, float]
    descriptor: np.ndarray
    crop_jpeg: bytes | None


PhotoFaces = Callable[[bytes], list[PhotoFace]]
"""``faces(photo_bytes)``: every face of the photo; PhotoError("not_an_image") if it is no
JPEG or PNG."""


def is_image(data: bytes) -> bool:
    return data.startswith(_JPEG) or data.startswith(_PNG)


class ModelPhotoFaces:
    """Faces of a photo through the models: ``models.detect`` (a ModelSet with faces on)
    and ``models.describer`` (dlib)."""

    def __init__(self, models: Any) -> None:
        if getattr(models, "describer", None) is None:
            raise ValueError("enrolment needs the face models (FACES_ENABLED, FACE_IDENTITIES)")
        self.models = models

    def __call__(self, data: bytes) -> list[PhotoFace]:
        import cv2

        from vidwatch.pipeline.draw import encode_jpeg
        from vidwatch.pipeline.identities import face_crop

        image = None
        if is_image(data):
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise PhotoError("not_an_image", "not a JPEG or PNG image")
        scale = MAX_PHOTO_SIDE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        faces = [
            f
            for f in self.models.detect([image])[0].faces
            if min(f.box_xyxy[2] - f.box_xyxy[0], f.box_xyxy[3] - f.box_xyxy[1]) >= MIN_FACE_PX
        ]
        boxes = [f.box_xyxy for f in faces]
        descriptors = self.models.describer.describe(image, boxes)
        return [
            PhotoFace(box, d, encode_jpeg(face_crop(image, box), 90))
            for box, d in zip(boxes, descriptors, strict=True)
        ]


def enrolment_faces(photos: Sequence[bytes], faces_of: PhotoFaces) -> list[EnrolFace]:
    """The one face of each photo, in order; PhotoError (naming the photo, 0-based) for
    the first photo that is not an image, or holds no face or several."""
    out = []
    for i, data in enumerate(photos):
        if not is_image(data):
            raise PhotoError("not_an_image", f"photo {i} is not a JPEG or PNG image", photo=i)
        try:
            found = faces_of(data)
        except PhotoError as exc:
            raise PhotoError(exc.code, f"photo {i}: {exc.message}", photo=i) from None
        if not found:
            raise PhotoError("no_face", f"photo {i} shows no face", photo=i)
        if len(found) > 1:
            raise PhotoError(
                "several_faces",
                f"photo {i} shows {len(found)} faces; give a photo of the one person",
                photo=i,
            )
        out.append(EnrolFace(found[0].descriptor, found[0].crop_jpeg))
    return out


def load_photo_faces(settings: Any) -> ModelPhotoFaces:
    """The face models alone (no YOLO), for the CLI: MTCNN and dlib, loaded here."""
    from vidwatch.detectors.registry import load_models

    return ModelPhotoFaces(
        load_models(
            settings.model_copy(
                update={
                    "detect_model": "none",
                    "segment_model": "none",
                    "faces_enabled": True,
                    "face_identities": True,
                    "model_workers": 1,
                }
            )
        )
    )
