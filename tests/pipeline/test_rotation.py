"""Issue 16, case 6: a phone video (frames coded 640x360, a display matrix turning them
upright) is reported upright: ``width``/``height`` are the upright size, ``rotation`` and
the coded size stand beside them, and boxes are in upright coordinates. The file is made
with PyAV, then the display matrix is written into the track header box ``tkhd``."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vidwatch.config import load_settings
from vidwatch.detectors.registry import ModelSet
from vidwatch.detectors.types import Detections, ModelInfo, ObjectDetection
from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, analyze
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

CODED_W, CODED_H = 640, 360
BLOCK = (40, 20, 200, 100)  # x1, y1, x2, y2 of a white block in the coded frame
TURN_90 = (0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)


def make_rotated_mp4(path: Path, matrix: tuple[int, ...] = TURN_90, frames: int = 10) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = CODED_W, CODED_H, "yuv420p"
        for _ in range(frames):
            img = np.zeros((CODED_H, CODED_W, 3), np.uint8)
            x1, y1, x2, y2 = BLOCK
            img[y1:y2, x1:x2] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    end = at - 4 + int.from_bytes(data[at - 4 : at], "big")
    # The matrix's nine big-endian 32-bit values sit just before width and height (8 bytes).
    data[end - 8 - 36 : end - 8] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))
    return path


class BrightBlock:
    """A detector that boxes the bright pixels of each frame it is given: it shows the
    coordinate frame the models see and the results record."""

    infos = (ModelInfo("objects", "bright-block", None),)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            ys, xs = np.nonzero(frame.max(axis=2) > 200)
            box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            out.append(Detections(objects=(ObjectDetection.make("block", 0, 1.0, box),)))
        return out


def test_a_rotated_phone_video_is_reported_upright(tmp_path):
    source = make_rotated_mp4(tmp_path / "phone.mp4")
    with av.open(str(source)) as container:  # the file is what the issue describes
        assert next(container.decode(video=0)).rotation == -90
    settings = load_settings({"TEMP_MEDIA_DIR": str(tmp_path / "tmp"), "SAMPLE_FPS": "25"})
    store = LocalStore(tmp_path / "store")
    job_id = "01JD3W5Q6Y7Z8A9B0C1D2E3F4G"
    context = AnalysisContext(
        job_id=job_id,
        store=store,
        models=ModelSet(detectors=[BrightBlock()], device="cpu", settings=settings),
    )
    results = analyze(source, context, AnalysisOptions.from_settings(settings)).to_json()
    video = results["video"]
    assert (video["width"], video["height"], video["rotation"]) == (CODED_H, CODED_W, 90)
    assert (video["coded_width"], video["coded_height"]) == (CODED_W, CODED_H)
    # Turned 90 degrees clockwise: coded (x, y) shows at (CODED_H - y, x).
    x1, y1, x2, y2 = BLOCK
    upright = (CODED_H - y2, x1, CODED_H - y1, x2)
    for frame in results["frames"]:
        (found,) = frame["objects"]
        assert found["box_xyxy"] == pytest.approx(upright, abs=4)
        assert 0 <= found["box_xyxy"][2] <= video["width"]
        assert 0 <= found["box_xyxy"][3] <= video["height"]
    image = cv2.imdecode(
        np.frombuffer(store.get_bytes(keys.frame_image_key(job_id, "original", 0)), np.uint8),
        cv2.IMREAD_COLOR,
    )
    assert image.shape[:2] == (video["height"], video["width"])


def test_an_unrotated_video_reports_its_coded_size_beside(tmp_path, media):
    from vidwatch.pipeline.video import probe

    info = probe(media / "single_shot.mp4", max_pixels=10**8, max_duration_s=3600).to_json()
    assert (info["width"], info["height"], info["rotation"]) == (320, 240, 0)
    assert (info["coded_width"], info["coded_height"]) == (320, 240)
