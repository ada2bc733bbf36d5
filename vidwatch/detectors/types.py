"""The result types every detector returns: frozen, validated, JSON-ready."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol, cast

Point = tuple[float, float]
"""``(x, y)`` in pixels. The one geometry family: the document models use these too."""
Box = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` in pixels."""


def _r(value: float, places: int = 2) -> float:
    out = round(float(value), places)
    return 0.0 if out == 0 else out  # no -0.0 in documents


def _box(values: Any) -> Box:
    x1, y1, x2, y2 = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 < x1 or y2 < y1:
        raise ValueError(f"invalid box {values!r}")
    return (_r(x1), _r(y1), _r(x2), _r(y2))


def _confidence(value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"confidence out of [0, 1]: {value}")
    return round(value, 4)


@dataclass(frozen=True, slots=True)
class ObjectDetection:
    """One object: a COCO-style label, its box and, from a segmentation model, its outline."""

    label: str
    class_id: int
    confidence: float
    box_xyxy: Box
    polygon: tuple[Point, ...] | None = None

    @classmethod
    def make(
        cls, label: str, class_id: int, confidence: float, box: Any, polygon: Any = None
    ) -> ObjectDetection:
        poly = None
        if polygon is not None:
            poly = tuple((_r(x, 1), _r(y, 1)) for x, y in polygon)
        return cls(str(label), int(class_id), _confidence(confidence), _box(box), poly)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "class_id": self.class_id,
            "confidence": self.confidence,
            "box_xyxy": list(self.box_xyxy),
        }
        if self.polygon is not None:
            out["polygon"] = [list(p) for p in self.polygon]
        return out


@dataclass(frozen=True, slots=True)
class FaceDetection:
    """One face: MTCNN's box and five landmarks, and the person it belongs to within the job
    (``None``: identities off, or the face too small or cut by the frame edge)."""

    confidence: float
    box_xyxy: Box
    landmarks: tuple[Point, ...] = ()
    person: int | None = None

    @classmethod
    def make(cls, confidence: float, box: Any, landmarks: Any = ()) -> FaceDetection:
        points = tuple((_r(x), _r(y)) for x, y in (landmarks if landmarks is not None else ()))
        return cls(_confidence(confidence), _box(box), points)

    def with_person(self, person: int | None) -> FaceDetection:
        return replace(self, person=person)

    def to_json(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "box_xyxy": list(self.box_xyxy),
            "landmarks": [list(p) for p in self.landmarks],
            "person": self.person,
        }


class Detection(Protocol):
    """What a detector finds: frozen, validated, and written into the documents as its
    ``to_json()``."""

    def to_json(self) -> dict[str, Any]: ...


class Detections:
    """What the models found in one frame, as named lists; each detector fills its own.

    ``objects``, ``segments`` and ``faces`` are the lists of the detectors vidwatch ships
    (typed accessors below); a registered detector may fill a list of another name
    (``Detections(brightness=(...))``), and it is carried, merged and written into the
    frame documents like them (``vidwatch.detectors.catalogue``). Immutable."""

    __slots__ = ("_lists",)
    _lists: dict[str, tuple[Detection, ...]]

    def __init__(
        self,
        objects: Iterable[ObjectDetection] = (),
        segments: Iterable[ObjectDetection] = (),
        faces: Iterable[FaceDetection] = (),
        **more: Iterable[Detection],
    ) -> None:
        lists: dict[str, tuple[Detection, ...]] = {
            "objects": tuple(objects),
            "segments": tuple(segments),
            "faces": tuple(faces),
        }
        lists.update((name, tuple(items)) for name, items in more.items())
        object.__setattr__(self, "_lists", lists)

    @classmethod
    def _of(cls, lists: dict[str, tuple[Detection, ...]]) -> Detections:
        out = cls.__new__(cls)
        object.__setattr__(out, "_lists", lists)
        return out

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Detections is immutable: {name} cannot be set")

    @property
    def objects(self) -> tuple[ObjectDetection, ...]:
        return cast("tuple[ObjectDetection, ...]", self._lists["objects"])

    @property
    def segments(self) -> tuple[ObjectDetection, ...]:
        return cast("tuple[ObjectDetection, ...]", self._lists["segments"])

    @property
    def faces(self) -> tuple[FaceDetection, ...]:
        return cast("tuple[FaceDetection, ...]", self._lists["faces"])

    @property
    def lists(self) -> Mapping[str, tuple[Detection, ...]]:
        """Every list by name: the three above first, then the others in the order they
        were added."""
        return MappingProxyType(self._lists)

    def replace(self, **lists: Iterable[Detection]) -> Detections:
        """A copy with the lists named replaced (the others kept)."""
        return Detections._of({**self._lists, **{k: tuple(v) for k, v in lists.items()}})

    def merge(self, other: Detections) -> Detections:
        """Both frames' findings: each list of ``other`` after the same list of this one."""
        merged = dict(self._lists)
        for name, items in other._lists.items():
            merged[name] = merged.get(name, ()) + items
        return Detections._of(merged)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        return self._lists == other._lists

    def __hash__(self) -> int:
        return hash(tuple(self._lists.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={items!r}" for name, items in self._lists.items())
        return f"Detections({inner})"


@dataclass(frozen=True)
class ModelInfo:
    """Provenance of a loaded model: which weights made a result."""

    role: str
    name: str
    sha256: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, **self.extra}
