"""Realistic per-frame analysis documents, for the TOON tests and benchmark.

The shape follows the frame JSON the pipeline writes (``analysis/json/frame_<N>.json``):
detections, instance masks as polygons, faces with five landmarks, and the keys of the frame
images. Values are what the detectors emit after rounding: confidences to 2-3 decimals,
pixel coordinates to 1 decimal, times to milliseconds. Seeded, so runs compare.
"""

from __future__ import annotations

import random
from typing import Any

JOB_ID = "01JD3ZQ7W8X9Y0ABCDEFGHJKMN"

# (class_id, label) pairs from the COCO classes YOLO reports, with the multi-word ones included
_CLASSES = [
    (0, "person"),
    (1, "bicycle"),
    (2, "car"),
    (3, "motorcycle"),
    (5, "bus"),
    (9, "traffic light"),
    (16, "dog"),
    (24, "backpack"),
    (39, "bottle"),
    (41, "cup"),
    (56, "chair"),
    (62, "tv"),
    (63, "laptop"),
    (67, "cell phone"),
    (73, "book"),
]


def _box(rng: random.Random, width: int, height: int) -> list[float]:
    x1 = rng.uniform(0, width * 0.8)
    y1 = rng.uniform(0, height * 0.8)
    x2 = rng.uniform(x1 + 8, min(width, x1 + width * 0.6))
    y2 = rng.uniform(y1 + 8, min(height, y1 + height * 0.6))
    return [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)]


def _polygon(rng: random.Random, box: list[float], points: int) -> list[list[float]]:
    x1, y1, x2, y2 = box
    return [[round(rng.uniform(x1, x2), 1), round(rng.uniform(y1, y2), 1)] for _ in range(points)]


def frame_document(
    frame: int,
    rng: random.Random,
    *,
    job_id: str = JOB_ID,
    fps: float = 25.0,
    width: int = 1280,
    height: int = 720,
) -> dict[str, Any]:
    """One frame's analysis document with a random but plausible set of detections."""
    objects: list[dict[str, Any]] = []
    for _ in range(rng.choice([0, 1, 2, 3, 4, 6, 9])):
        class_id, label = rng.choice(_CLASSES)
        objects.append(
            {
                "label": label,
                "class_id": class_id,
                "confidence": round(rng.uniform(0.25, 0.99), 2),
                "box_xyxy": _box(rng, width, height),
            }
        )
    segments: list[dict[str, Any]] = []
    for obj in objects[: rng.randint(0, len(objects))]:
        box = [round(v + rng.uniform(-1.5, 1.5), 1) for v in obj["box_xyxy"]]
        segments.append(
            {
                "label": obj["label"],
                "class_id": obj["class_id"],
                "confidence": round(max(0.25, obj["confidence"] - rng.uniform(0, 0.05)), 2),
                "box_xyxy": box,
                "polygon": _polygon(rng, box, rng.randint(3, 60)),
            }
        )
    faces = []
    for i in range(rng.choice([0, 0, 1, 1, 2, 3])):
        box = _box(rng, width, height)
        faces.append(
            {
                "confidence": round(rng.uniform(0.9, 0.9999), 3),
                "box_xyxy": box,
                "landmarks": _polygon(rng, box, 5),
                "person": None if i == 2 else i,  # a third face too small for a person
            }
        )
    base = f"jobs/{job_id}/frames"
    return {
        "schema_version": 1,
        "job_id": job_id,
        "frame": frame,
        "time_s": round(frame / fps, 3),
        "scene": 1 + frame // 400,
        "objects": objects,
        "segments": segments,
        "faces": faces,
        "images": {
            kind: f"{base}/{kind}/frame_{frame}.jpg" for kind in ("original", "det", "seg", "face")
        },
    }


def frame_documents(count: int, *, seed: int = 6, step: int = 25) -> list[dict[str, Any]]:
    """``count`` frame documents for frames 0, step, 2*step, ... (one sampled frame a second)."""
    rng = random.Random(seed)
    return [frame_document(i * step, rng) for i in range(count)]
