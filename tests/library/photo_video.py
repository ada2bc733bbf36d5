"""Videos and photos of real people for the library's model tests: the face_recognition
test photos (``photos/``, MIT) and scikit-image's ``astronaut`` and ``camera``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PHOTOS = Path(__file__).parent / "photos"


def photo(who: str) -> np.ndarray:
    """BGR pixels of ``obama``, ``obama2``, ``obama3``, ``biden``, ``astronaut``, ``camera``."""
    import cv2
    from skimage import data

    if who == "astronaut":
        return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    if who == "camera":
        return cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    image = cv2.imread(str(PHOTOS / f"{who}.jpg"))
    assert image is not None, who
    return image


def photo_bytes(who: str) -> bytes:
    import cv2

    if (PHOTOS / f"{who}.jpg").is_file():
        return (PHOTOS / f"{who}.jpg").read_bytes()
    ok, buf = cv2.imencode(".jpg", photo(who))
    assert ok
    return buf.tobytes()


def side_by_side(*who: str, height: int = 360) -> np.ndarray:
    """The photos scaled to ``height`` and put next to each other on a grey canvas."""
    import cv2

    parts = []
    for w in who:
        image = photo(w)
        scale = height / image.shape[0]
        parts.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    canvas = np.concatenate(parts, axis=1)
    width = canvas.shape[1] + (-canvas.shape[1]) % 16
    out = np.full((height, width, 3), 128, np.uint8)
    out[:, : canvas.shape[1]] = canvas
    return out


def still_video(
    path: Path, image: np.ndarray, *, frames: int = 4, fps: int = 2, blank_frames: int = 0
) -> Path:
    """An H.264 video showing ``image`` for ``frames`` frames, after ``blank_frames`` of a
    plain background (so that the people are first seen later than 0 s)."""
    import av

    blank = np.full_like(image, 30)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = image.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"}
        for shown in [blank] * blank_frames + [image] * frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(shown, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


CASTS = (("a", ("obama", "astronaut")), ("b", ("biden", "astronaut")))
"""Video A: Obama and the astronaut; video B: Biden and the astronaut (a shared stranger)."""

FACES_ONLY = {"DETECT_MODEL": "none", "SEGMENT_MODEL": "none"}
"""Settings of a job that runs the face models only (TOON is off in ``local_settings``)."""


def analyse_casts(
    root: Path, settings: Any, face_models: Any, store: Any, **video: int
) -> dict[str, str]:
    """The CASTS' videos (``still_video`` with ``video``), each analysed into ``store``;
    their job ids by name."""
    from tests.pipeline.test_pipeline import _run

    jobs = {}
    for name, cast in CASTS:
        path = still_video(root / f"{name}.mp4", side_by_side(*cast), **video)
        _, job_id, manifest = _run(path, settings, face_models, store=store)
        assert manifest.state == "completed", manifest.error
        jobs[name] = job_id
    return jobs
