"""A face-recall set built from the shared media: real faces from 20 px to 400 px in 720p
frames, with their true boxes, and the recall / false-positive score of a face detector.

The faces are the astronaut's and the cameraman's (the two faces of the test media), cut
from their shots at the box a full-frame MTCNN gives there, and pasted, scaled to each
size, onto 720p frames of the shots without faces (the cat, the coffee, the rocket).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

SIZES = (20, 24, 28, 32, 40, 48, 56, 64, 80, 100, 128, 160, 200, 256, 320, 400)
WIDTH, HEIGHT = 1280, 720
# (file, frame with a face, frame of a face-free background) in cuts_h264.mp4
FACE_FRAMES = {"astronaut": 10, "camera": 240}
BACKGROUND_FRAMES = (60, 100, 200)

Box = tuple[float, float, float, float]


def _frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    import av

    out = {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in wanted:
                out[i] = f.to_ndarray(format="bgr24")
            if len(out) == len(wanted):
                break
    return out


def face_crops(media: Path, detect: Callable[[np.ndarray], Sequence[Box]]) -> list[np.ndarray]:
    """The two faces, cut (square) around the largest box ``detect`` finds in their frames."""
    frames = _frames(media / "cuts_h264.mp4", set(FACE_FRAMES.values()))
    crops = []
    for index in FACE_FRAMES.values():
        img = frames[index]
        boxes = list(detect(img))
        if not boxes:
            raise RuntimeError(f"no face found in frame {index} of cuts_h264.mp4")
        x1, y1, x2, y2 = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        side = max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        h, w = img.shape[:2]
        a = int(max(0, cx - side / 2))
        b = int(max(0, cy - side / 2))
        crops.append(img[b : min(h, int(b + side)), a : min(w, int(a + side))].copy())
    return crops


def build(media: Path, crops: list[np.ndarray]) -> list[tuple[np.ndarray, list[Box]]]:
    """720p frames with faces of every size in SIZES, and their true boxes."""
    import cv2

    backgrounds = [
        cv2.resize(f, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        for f in _frames(media / "cuts_h264.mp4", set(BACKGROUND_FRAMES)).values()
    ]
    out = []
    for n, size in enumerate(SIZES):
        img = backgrounds[n % len(backgrounds)].copy()
        # Small faces four to a frame (both people twice), large ones one of each.
        count = 4 if size <= 100 else 2
        slot = WIDTH // count
        boxes = []
        for k in range(count):
            face = crops[k % len(crops)]
            scaled = cv2.resize(
                face,
                (size, size),
                interpolation=cv2.INTER_AREA if size < face.shape[0] else cv2.INTER_CUBIC,
            )
            x = k * slot + (slot - size) // 2
            y = (HEIGHT - size) // 2 + (37 * (k + n)) % max(1, (HEIGHT - size) // 2) // 2
            img[y : y + size, x : x + size] = scaled
            boxes.append((float(x), float(y), float(x + size), float(y + size)))
        out.append((img, boxes))
    return out


def iou(a: Box, b: Box) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score(
    found: Sequence[Sequence[tuple[Box, float]]],
    truth: Sequence[Sequence[Box]],
    *,
    min_p: float = 0.9,
    min_iou: float = 0.4,
) -> dict:
    """Recall of the true faces (a detection with p >= ``min_p`` overlapping by ``min_iou``),
    by size, and the detections with p >= ``min_p`` that match no face (false positives)."""
    hits = misses = false = 0
    by_size: dict[int, list[int]] = {}
    for dets, boxes in zip(found, truth, strict=True):
        kept = [b for b, p in dets if p >= min_p]
        used: set[int] = set()
        for t in boxes:
            best = max(
                ((iou(t, d), i) for i, d in enumerate(kept) if i not in used), default=(0.0, -1)
            )
            size = round(t[2] - t[0])
            entry = by_size.setdefault(size, [0, 0])
            entry[1] += 1
            if best[0] >= min_iou:
                used.add(best[1])
                hits += 1
                entry[0] += 1
            else:
                misses += 1
        false += len(kept) - len(used)
    total = hits + misses
    return {
        "faces": total,
        "found": hits,
        "recall": round(hits / total, 4) if total else None,
        "false_positives": false,
        "recall_by_size": {str(s): f"{h}/{n}" for s, (h, n) in sorted(by_size.items())},
    }
