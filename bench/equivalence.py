"""Do two runtimes give the same boxes? Random-weight YOLO models that do detect things, and
the matching rule (same class, IoU >= 0.98, confidence within 0.02).

A YOLO built from Ultralytics' yaml has batch-norm statistics of an untrained net: its
activations vanish and it finds nothing anywhere, so comparing runtimes on it proves
nothing. ``calibrated_yolo`` sets the batch-norm statistics from real frames and the class
biases so that a few dozen boxes of many classes pass the usual 0.25 threshold: still
random weights (no download), but boxes, classes, confidences and masks that depend on
the pixels, which is what a runtime has to reproduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.face_set import iou

CLASS_BIAS = -8.5


def calibrated_yolo(yaml: str, out: Path, frames: Sequence[np.ndarray]) -> Path:
    """Save to ``out`` a random-weight model from ``yaml`` calibrated on BGR ``frames``."""
    import cv2
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO(yaml)
    net = model.model
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None  # a plain average over the calibration batch
    batch = torch.stack(
        [
            torch.from_numpy(cv2.resize(f, (640, 384))[:, :, ::-1].copy()).permute(2, 0, 1)
            for f in frames
        ]
    ).float()
    net.train()
    with torch.no_grad():
        net(batch / 255.0)
    net.eval()
    for seq in net.model[-1].cv3:
        seq[-1].bias.data.fill_(CLASS_BIAS)
    model.save(str(out))
    return out


def match_boxes(
    ref: Sequence[tuple[int, float, Sequence[float]]],
    other: Sequence[tuple[int, float, Sequence[float]]],
    *,
    threshold: float,
    min_iou: float = 0.98,
    max_dconf: float = 0.02,
) -> dict:
    """Match (class, confidence, box) lists of one frame both ways.

    A box whose confidence is at least ``threshold + max_dconf`` must have a partner in the
    other list (same class, IoU >= ``min_iou``, confidence within ``max_dconf``); boxes
    closer to the threshold may fall either side of it in the other runtime."""
    out = {"compared": 0, "unmatched": [], "worst_iou": 1.0, "worst_dconf": 0.0}
    for a_list, b_list, side in ((ref, other, "ref"), (other, ref, "other")):
        for cls, conf, box in a_list:
            if conf < threshold + max_dconf:
                continue
            # The partner: same class, and of those overlapping by min_iou, the closest in
            # confidence (overlapping duplicates of one object are common before NMS limits).
            best = None
            for cls2, conf2, box2 in b_list:
                if cls2 != cls:
                    continue
                cand = (iou(tuple(box), tuple(box2)), abs(conf - conf2))
                if best is None or (cand[0] >= min_iou, -cand[1]) > (best[0] >= min_iou, -best[1]):
                    best = cand
            out["compared"] += 1
            if best is None or best[0] < min_iou or best[1] > max_dconf:
                out["unmatched"].append((side, cls, round(conf, 3), best))
            else:
                out["worst_iou"] = min(out["worst_iou"], best[0])
                out["worst_dconf"] = max(out["worst_dconf"], best[1])
    return out
