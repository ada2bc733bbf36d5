"""Who is who within one job: every face that can be described is assigned a person as its
frame leaves the models, and that id never changes afterwards.

Why online and final: the frame documents (JSON and TOON) are written while the video is
still being decoded, and each must equal its entry in results.json. Ids that a later merge
could renumber would mean rewriting documents already in the store; here a face is compared
with every person seen so far (the smallest distance to any of that person's kept
descriptors, ``exemplars``) and joins the nearest one within the threshold, else starts a
new person. Nothing ever merges two people, so no document can disagree with another.

A face whose box overlaps a face of the previous sampled frame of the same scene (IoU at
least ``reuse_iou``, one to one) keeps that face's person without a new descriptor, the
way trackers identify a track once: a descriptor costs about as much as the face detector
on the CPU. Every ``recheck_every`` samples a continued face is described again.

Descriptors stay in memory for the job: the job's files hold none. At the job's end they
are handed to the people library (``vidwatch.library``), which keeps a few per person in
``library/index.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from vidwatch.detectors.types import Box, FaceDetection

# A face whose box is less than this fraction inside the frame is "cut by the edge": its
# descriptor would describe half a face, so it gets no person.
MIN_VISIBLE_FRACTION = 0.6
THUMBNAIL_MAX_SIDE = 256
THUMBNAIL_MARGIN = 0.25  # of the box side, on each side of the face crop


class FaceDescriber(Protocol):
    """Turns face boxes of one frame into descriptors (dlib's ResNet in production)."""

    def describe(self, image_bgr: np.ndarray, boxes: list[Box]) -> list[np.ndarray]: ...


@dataclass
class _Person:
    exemplars: list[np.ndarray] = field(default_factory=list)
    best_quality: float = -1.0
    best_crop: np.ndarray | None = None


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def visible_fraction(box: Box, width: int, height: int) -> float:
    x1, y1, x2, y2 = box
    area = (x2 - x1) * (y2 - y1)
    if area <= 0:
        return 0.0
    ix = max(0.0, min(x2, width) - max(x1, 0.0))
    iy = max(0.0, min(y2, height) - max(y1, 0.0))
    return ix * iy / area


class IdentityTracker:
    """Assigns people to the faces of each sampled frame, in frame order."""

    def __init__(
        self,
        describer: FaceDescriber,
        *,
        threshold: float,
        min_px: int,
        reuse_iou: float = 0.5,
        recheck_every: int = 10,
        max_exemplars: int = 64,
        exemplar_min_distance: float = 0.1,
    ) -> None:
        self._describer = describer
        self.threshold = threshold
        self.min_px = min_px
        self.reuse_iou = reuse_iou
        self.recheck_every = recheck_every
        self.max_exemplars = max_exemplars
        self.exemplar_min_distance = exemplar_min_distance
        self.people: list[_Person] = []
        # The previous sampled frame: its scene and (box, person, samples since described).
        self._last_scene: int | None = None
        self._last_faces: list[tuple[Box, int, int]] = []
        self.descriptors = 0
        self.reused = 0
        self.seconds = 0.0

    def assign(
        self, image_bgr: np.ndarray, scene: int, faces: tuple[FaceDetection, ...]
    ) -> tuple[FaceDetection, ...]:
        """``faces`` with their ``person`` set; called once per sampled frame, in order."""
        started = time.perf_counter()
        height, width = image_bgr.shape[:2]
        persons: list[int | None] = [None] * len(faces)
        ages: list[int] = [0] * len(faces)
        eligible = [
            i
            for i, f in enumerate(faces)
            if min(f.box_xyxy[2] - f.box_xyxy[0], f.box_xyxy[3] - f.box_xyxy[1]) >= self.min_px
            and visible_fraction(f.box_xyxy, width, height) >= MIN_VISIBLE_FRACTION
        ]
        if self.reuse_iou > 0 and scene == self._last_scene:
            for i, (person, age) in self._continued(faces, eligible).items():
                persons[i], ages[i] = person, age
                self.reused += 1
        # New faces are described together and joined left to right, so that people first
        # seen in the same frame are numbered in reading order.
        todo = sorted(
            (i for i in eligible if persons[i] is None),
            key=lambda i: (faces[i].box_xyxy[0], faces[i].box_xyxy[1]),
        )
        if todo:
            found = self._describer.describe(image_bgr, [faces[i].box_xyxy for i in todo])
            self.descriptors += len(todo)
            for i, descriptor in zip(todo, found, strict=True):
                persons[i] = self._join(descriptor)
        for i in eligible:
            self._keep_best(persons[i], faces[i], image_bgr)
        self._last_scene = scene
        self._last_faces = [
            (faces[i].box_xyxy, p, ages[i]) for i, p in enumerate(persons) if p is not None
        ]
        self.seconds += time.perf_counter() - started
        return tuple(f.with_person(p) for f, p in zip(faces, persons, strict=True))

    def _continued(
        self, faces: tuple[FaceDetection, ...], eligible: list[int]
    ) -> dict[int, tuple[int, int]]:
        """Faces that continue a face of the previous sample: index -> (person, age)."""
        pairs = sorted(
            (
                (iou(faces[i].box_xyxy, box), i, j)
                for i in eligible
                for j, (box, _, age) in enumerate(self._last_faces)
                if age + 1 < self.recheck_every
            ),
            reverse=True,
        )
        taken_i: set[int] = set()
        taken_j: set[int] = set()
        out: dict[int, tuple[int, int]] = {}
        for overlap, i, j in pairs:
            if overlap < self.reuse_iou:
                break
            if i in taken_i or j in taken_j:
                continue
            taken_i.add(i)
            taken_j.add(j)
            _, person, age = self._last_faces[j]
            out[i] = (person, age + 1)
        return out

    def _join(self, descriptor: np.ndarray) -> int:
        best, best_d = None, float("inf")
        for k, person in enumerate(self.people):
            d = float(np.min(np.linalg.norm(np.stack(person.exemplars) - descriptor, axis=1)))
            if d < best_d:
                best, best_d = k, d
        if best is None or best_d >= self.threshold:
            self.people.append(_Person(exemplars=[descriptor]))
            return len(self.people) - 1
        person = self.people[best]
        # Keep descriptors that add a view (pose, light, size), up to a bound per person.
        if len(person.exemplars) < self.max_exemplars and best_d >= self.exemplar_min_distance:
            person.exemplars.append(descriptor)
        return best

    def _keep_best(self, person: int | None, face: FaceDetection, image: np.ndarray) -> None:
        if person is None:
            return
        x1, y1, x2, y2 = face.box_xyxy
        quality = min(x2 - x1, y2 - y1) * face.confidence
        entry = self.people[person]
        if quality > entry.best_quality:
            entry.best_quality = quality
            entry.best_crop = face_crop(image, face.box_xyxy)

    def exemplars(self) -> dict[int, np.ndarray]:
        """Each person's kept descriptors (``n x 128``), handed to the library at the job's
        end (``AnalysisContext.on_people``); the job itself writes none of them."""
        return {k: np.stack(p.exemplars) for k, p in enumerate(self.people) if p.exemplars}

    def thumbnails(self) -> list[tuple[int, np.ndarray]]:
        """``(person, crop)``: each person's best face (largest side times confidence)."""
        return [(k, p.best_crop) for k, p in enumerate(self.people) if p.best_crop is not None]


def face_crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The face with a margin, clipped to the frame, at most THUMBNAIL_MAX_SIDE px."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * THUMBNAIL_MARGIN, (y2 - y1) * THUMBNAIL_MARGIN
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    crop = image[top:bottom, left:right]
    side = max(crop.shape[:2])
    if side > THUMBNAIL_MAX_SIDE:
        scale = THUMBNAIL_MAX_SIDE / side
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)
