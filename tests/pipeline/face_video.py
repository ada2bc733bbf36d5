"""Test videos of people with exact truth, made at test time from scikit-image's two
portraits: ``astronaut`` (Eileen Collins) and ``camera`` (the cameraman). Each scene puts
head-and-shoulders cut-outs of them on a plain background of its own colour (so the cut
between scenes is a hard one), at a given face size and place, mirrored or not; the truth
says, for every frame, where each person's face is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Head-and-shoulders regions of the 512x512 photos, and the face box inside each (from
# MTCNN on the photo; only the face's centre and side are used for the truth).
_CUTOUTS = {
    "astronaut": {"region": (120, 20, 330, 270), "face": (181, 62, 268, 172)},
    "camera": {"region": (150, 70, 310, 280), "face": (199, 119, 254, 192)},
}


@dataclass(frozen=True)
class Placement:
    """One person in a scene: face side ``face_px`` (the face box's width), face centre at
    (``cx``, ``cy``) in the first frame, moving ``dx``, ``dy`` px and growing ``grow`` px a
    frame."""

    who: str
    face_px: float
    cx: float
    cy: float
    mirror: bool = False
    dx: float = 0.0
    dy: float = 0.0
    grow: float = 0.0


@dataclass
class Scene:
    frames: int
    background: tuple[int, int, int]
    people: list[Placement] = field(default_factory=list)


def _photo(who: str) -> np.ndarray:
    import cv2
    from skimage import data

    if who == "astronaut":
        return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)


def paste(canvas: np.ndarray, p: Placement, t: int) -> tuple[float, float, float, float]:
    """Draws ``p`` at frame ``t`` onto ``canvas``; returns the face box it put there
    (which may reach outside the canvas: a face cut by the edge)."""
    import cv2

    cut = _CUTOUTS[p.who]
    rx1, ry1, rx2, ry2 = cut["region"]
    fx1, fy1, fx2, fy2 = cut["face"]
    scale = (p.face_px + p.grow * t) / (fx2 - fx1)
    region = _photo(p.who)[ry1:ry2, rx1:rx2]
    # Face centre within the region, before scaling.
    fcx, fcy = (fx1 + fx2) / 2 - rx1, (fy1 + fy2) / 2 - ry1
    if p.mirror:
        region = region[:, ::-1]
        fcx = (rx2 - rx1) - fcx
    img = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cx, cy = p.cx + p.dx * t, p.cy + p.dy * t
    left, top = round(cx - fcx * scale), round(cy - fcy * scale)
    h, w = img.shape[:2]
    H, W = canvas.shape[:2]
    x1, y1, x2, y2 = max(left, 0), max(top, 0), min(left + w, W), min(top + h, H)
    if x2 > x1 and y2 > y1:
        canvas[y1:y2, x1:x2] = img[y1 - top : y2 - top, x1 - left : x2 - left]
    half_w, half_h = (fx2 - fx1) * scale / 2, (fy2 - fy1) * scale / 2
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def make_video(
    path: Path, scenes: list[Scene], *, size: tuple[int, int] = (640, 360), fps: int = 10
) -> list[dict]:
    """Writes an H.264 video of ``scenes``; returns the truth of every frame:
    ``{"frame", "scene", "faces": [{"who", "box"}]}``."""
    import av

    width, height = size
    truth = []
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "16"}
        n = 0
        for s_index, scene in enumerate(scenes):
            for t in range(scene.frames):
                canvas = np.empty((height, width, 3), np.uint8)
                canvas[:] = scene.background
                faces = [{"who": p.who, "box": paste(canvas, p, t)} for p in scene.people]
                truth.append({"frame": n, "scene": s_index, "faces": faces})
                frame = av.VideoFrame.from_ndarray(canvas, format="bgr24")
                for packet in stream.encode(frame):
                    out.mux(packet)
                n += 1
        for packet in stream.encode():
            out.mux(packet)
    return truth


def match(found_box, truth_faces: list[dict]) -> dict | None:
    """The truth face whose centre is nearest the found box's centre, within half a side."""
    cx, cy = (found_box[0] + found_box[2]) / 2, (found_box[1] + found_box[3]) / 2
    best, best_d = None, float("inf")
    for face in truth_faces:
        x1, y1, x2, y2 = face["box"]
        d = ((cx - (x1 + x2) / 2) ** 2 + (cy - (y1 + y2) / 2) ** 2) ** 0.5
        if d < best_d and d < (x2 - x1) / 2:
            best, best_d = face, d
    return best
