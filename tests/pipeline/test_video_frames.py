"""Decoded frames: a frame is converted to full-size BGR only when something reads its
image (the sampled ones); the scene tracker's small frame comes from the 4:2:0 planes and
equals the resized BGR image (to the bit where the resize takes whole pixels), rotation
included."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from scenedetect import FrameTimecode
from scenedetect.detectors import ContentDetector

from vidwatch.config import load_settings
from vidwatch.detectors.registry import ModelSet
from vidwatch.detectors.scenes import ContentSceneTracker
from vidwatch.detectors.types import Detections, ModelInfo
from vidwatch.pipeline import video
from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, analyze
from vidwatch.pipeline.video import Frame, decode
from vidwatch.r2.local import LocalStore

TURN_90 = (0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)


def _encode(
    src: Path,
    dest: Path,
    size: tuple[int, int],
    pix_fmt: str = "yuv420p",
    frames: int = 30,
    band: bool = True,
) -> Path:
    """The first ``frames`` frames of ``src`` at ``size``, with a band of saturated colours
    (the conversion clips there) across the top."""
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
        stream.options = {"preset": "ultrafast", "crf": "18"}
        with av.open(str(src)) as inp:
            for n, frame in enumerate(inp.decode(video=0)):
                if n >= frames:
                    break
                img = cv2.resize(frame.to_ndarray(format="bgr24"), size)
                colours = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 0, 255)) if band else ()
                for k, colour in enumerate(colours):
                    img[: size[1] // 6, k * size[0] // 4 + n : (k + 1) * size[0] // 4] = colour
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


def _rotate(path: Path, matrix: tuple[int, ...] = TURN_90) -> Path:
    """The same file with a display matrix in its track header (as tests/pipeline/test_rotation)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    end = at - 4 + int.from_bytes(data[at - 4 : at], "big")
    data[end - 8 - 36 : end - 8] = struct.pack(">9i", *matrix)
    rotated = path.with_name(path.stem + "_rotated.mp4")
    rotated.write_bytes(bytes(data))
    return rotated


def _small_size(frame: Frame) -> tuple[int, int]:
    tracker = ContentSceneTracker(fps=25)
    tracker.push(0, frame)
    assert tracker._size is not None
    return tracker._size


@pytest.mark.parametrize("rotated", [False, True])
def test_the_small_frame_of_a_720p_frame_is_the_resized_image_to_the_bit(tmp_path, media, rotated):
    path = _encode(media / "cuts_h264.mp4", tmp_path / "hd.mp4", (1280, 720))
    if rotated:
        path = _rotate(path)
    frames = list(decode(path))
    size = _small_size(frames[0])
    assert size == ((144, 256) if rotated else (256, 144))
    for frame in frames:
        small = frame.resized(size)  # before the image exists: from the planes
        assert frame.size == (frame.image.shape[1], frame.image.shape[0])
        expected = cv2.resize(frame.image, size, interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(small, expected), frame.index


@pytest.mark.parametrize(("size", "rotated"), [((1920, 1080), False), ((1100, 620), True)])
def test_the_small_frame_scores_as_the_resized_image(tmp_path, media, size, rotated):
    """At a scale that is not a whole number of pixels (1920x1080 and 1100x620 to 256
    wide) a pixel may differ by the rounding of interpolating before the conversion: every
    frame's content score stays within 0.5 of the image's (the threshold is 27; on the
    shared media at 1080p the scores nearest it are more than 10 away)."""
    path = _encode(media / "cuts_h264.mp4", tmp_path / "big.mp4", size)
    if rotated:
        path = _rotate(path)
    frames = list(decode(path))
    small_size = _small_size(frames[0])
    ours, image = ContentDetector(), ContentDetector()
    for frame in frames:
        small = frame.resized(small_size)
        expected = cv2.resize(frame.image, small_size, interpolation=cv2.INTER_LINEAR)
        assert small.shape == expected.shape
        assert np.abs(small.astype(int) - expected).mean() < 0.5
        tc = FrameTimecode(frame.index, fps=25.0)
        ours.process_frame(tc, small)
        image.process_frame(tc, expected)
        if frame.index > 0:
            assert ours._frame_score == pytest.approx(image._frame_score, abs=0.5)


@pytest.mark.parametrize("name", ["cuts_h264.mp4", "cuts_vp9.webm", "single_shot.mp4"])
def test_a_frame_under_1024_px_wide_is_converted_whole(media, name):
    """Under 4 times the small frame's width the whole conversion costs less than the
    planes' path: the small frame is the resized image, as before."""
    frames = list(decode(media / name))
    size = _small_size(frames[0])
    for frame in frames:
        small = frame.resized(size)
        assert np.array_equal(small, cv2.resize(frame.image, size, interpolation=cv2.INTER_LINEAR))


def test_another_pixel_format_takes_the_bgr_path(tmp_path, media):
    path = _encode(media / "single_shot.mp4", tmp_path / "444.mp4", (640, 360), "yuv444p")
    for frame in decode(path):
        small = frame.resized((256, 144))
        expected = cv2.resize(frame.image, (256, 144), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(small, expected)


def test_frames_held_past_the_decoder_keep_their_pictures(media):
    """A frame keeps the decoder's buffers it was decoded into: frames read after the
    file is closed (a delay line, the queues) are the frames decoded, not reused memory."""
    path = media / "cuts_h264.mp4"
    eager = [(f.resized((256, 144)), f.image) for f in decode(path)]
    held = list(decode(path))
    assert len(held) == len(eager) == 280
    for frame, (small, image) in zip(held, eager, strict=True):
        assert np.array_equal(frame.resized((256, 144)), small)
        assert np.array_equal(frame.image, image)


def test_a_frame_is_an_image_or_a_decoded_frame():
    image = np.zeros((4, 6, 3), np.uint8)
    frame = Frame(3, 0.12, image)
    assert frame.image is image and frame.size == (6, 4)
    assert frame.resized((3, 2)).shape == (2, 3, 3)
    with pytest.raises(ValueError):
        Frame(0, 0.0)


class _Nothing:
    infos = (ModelInfo("objects", "nothing", None),)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections() for _ in frames]


def test_only_sampled_frames_are_converted_to_bgr(tmp_path, media, monkeypatch):
    """cuts_h264 at 720p (280 frames, 25 fps, SAMPLE_FPS 1): 14 frames go to the models
    (one a second and the scenes starting at 90 and 195), and only they are converted to
    full-size BGR; the scene stage reads every frame's planes."""
    source = _encode(
        media / "cuts_h264.mp4", tmp_path / "hd.mp4", (1280, 720), frames=280, band=False
    )
    converted: list[int] = []
    to_bgr = video._to_bgr

    def counting(frame: av.VideoFrame) -> np.ndarray:
        converted.append(frame.pts)
        return to_bgr(frame)

    monkeypatch.setattr(video, "_to_bgr", counting)
    settings = load_settings({"TEMP_MEDIA_DIR": str(tmp_path / "tmp"), "SAMPLE_FPS": "1"})
    context = AnalysisContext(
        job_id="01JD3W5Q6Y7Z8A9B0C1D2E3F4G",
        store=LocalStore(tmp_path / "store"),
        models=ModelSet(detectors=[_Nothing()], device="cpu", settings=settings),
    )
    results = analyze(source, context, AnalysisOptions.from_settings(settings))
    doc = results.to_json()
    assert [(s["start_frame"], s["end_frame"]) for s in doc["scenes"]] == [
        (0, 50),
        (50, 90),
        (90, 150),
        (150, 195),
        (195, 225),
        (225, 280),
    ]
    assert doc["stats"]["frames_decoded"] == 280
    assert len(converted) == len(doc["frames"]) == 14
