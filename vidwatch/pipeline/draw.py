"""The annotated frame images, drawn with OpenCV (Ultralytics' plot() may fetch a font)."""

from __future__ import annotations

import cv2
import numpy as np

from vidwatch.detectors.types import Detections

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _colour(class_id: int) -> tuple[int, int, int]:
    # A fixed, well-spread palette: the same class keeps its colour across frames and jobs.
    hue = (class_id * 47) % 180
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _scale(image: np.ndarray) -> tuple[float, int]:
    side = min(image.shape[:2])
    return max(0.35, side / 900), max(1, round(side / 360))


def _label(image: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    font_scale, thickness = _scale(image)
    (w, h), base = cv2.getTextSize(text, _FONT, font_scale, thickness)
    y = max(y, h + base)
    cv2.rectangle(image, (x, y - h - base), (x + w, y), colour, -1)
    cv2.putText(image, text, (x, y - base), _FONT, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)


def draw_det(frame: np.ndarray, found: Detections) -> np.ndarray:
    out = frame.copy()
    _, thickness = _scale(out)
    for obj in found.objects:
        x1, y1, x2, y2 = (round(v) for v in obj.box_xyxy)
        colour = _colour(obj.class_id)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        _label(out, f"{obj.label} {obj.confidence:.2f}", x1, y1, colour)
    return out


def draw_seg(frame: np.ndarray, found: Detections, alpha: float = 0.45) -> np.ndarray:
    out = frame.copy()
    if not found.segments:
        return out
    overlay = out.copy()
    for seg in found.segments:
        pts = np.round(np.asarray(seg.polygon, dtype=np.float32)).astype(np.int32)
        cv2.fillPoly(overlay, [pts], _colour(seg.class_id))
    cv2.addWeighted(overlay, alpha, out, 1 - alpha, 0, dst=out)
    _, thickness = _scale(out)
    for seg in found.segments:
        pts = np.round(np.asarray(seg.polygon, dtype=np.float32)).astype(np.int32)
        cv2.polylines(out, [pts], True, _colour(seg.class_id), thickness, cv2.LINE_AA)
        x1, y1 = round(seg.box_xyxy[0]), round(seg.box_xyxy[1])
        _label(out, seg.label, x1, y1, _colour(seg.class_id))
    return out


def draw_faces(frame: np.ndarray, found: Detections) -> np.ndarray:
    out = frame.copy()
    _, thickness = _scale(out)
    green, red = (80, 220, 80), (60, 60, 255)
    for face in found.faces:
        x1, y1, x2, y2 = (round(v) for v in face.box_xyxy)
        cv2.rectangle(out, (x1, y1), (x2, y2), green, thickness)
        for x, y in face.landmarks:
            cv2.circle(out, (round(x), round(y)), thickness + 1, red, -1, cv2.LINE_AA)
        # The person id (per job) beside the box; "face" where there is none.
        name = "face" if face.person is None else f"person {face.person}"
        _label(out, f"{name} {face.confidence:.2f}", x1, y1, green)
    return out


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
