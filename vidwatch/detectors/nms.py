"""Greedy non-maximum suppression over boxes (x1, y1, x2, y2), shared by MTCNN's stages and
the YOLO runner: "Union" is torchvision's ``nms`` (IoU, no +1 on sides), "Min" facenet's
numpy rule (intersection over the smaller box, +1 on sides)."""

from __future__ import annotations

import numpy as np

# Above this many boxes NMS goes box by box (its pairwise matrix would not fit in cache).
MATRIX_MAX = 2048


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "Union"
) -> np.ndarray:
    """Greedy NMS; "Union" as torchvision's ``nms`` (no +1), "Min" as facenet's numpy one.

    The overlaps of all pairs are computed at once (the same float operations as box by
    box, so the same result); only the boxes that overlap a later one are then walked."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    if len(boxes) > MATRIX_MAX:
        return nms_loop(boxes, scores, threshold, method)
    order = np.argsort(-scores, kind="stable")
    b = boxes[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    plus = 1.0 if method == "Min" else 0.0
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    w = np.maximum(0.0, np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1) + plus)
    h = np.maximum(0.0, np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1) + plus)
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "Min":
            overlap = inter / np.minimum(area[:, None], area)
        else:
            overlap = inter / (area[:, None] + area - inter)
    # Box j (after i in score order) goes when a kept i overlaps it more than the threshold
    # (NaN overlaps too, as in the box by box loop, which keeps only "<= threshold").
    gone = np.triu(~(overlap <= threshold), k=1)
    suppressed = np.zeros(len(b), dtype=bool)
    for i in np.flatnonzero(gone.any(axis=1)):
        if not suppressed[i]:
            suppressed |= gone[i]
    return order[~suppressed].astype(np.int64)


def nms_loop(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str) -> np.ndarray:
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    plus = 1.0 if method == "Min" else 0.0
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + plus)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + plus)
        inter = w * h
        if method == "Min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)
