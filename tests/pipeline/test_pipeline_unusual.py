"""Valid videos are analysed however unusual: one frame, 16x16 pixels, portrait, VP9 in
Matroska with odd sizes. They are made at test time from the shared media, not committed."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.pipeline.test_pipeline import _run
from vidwatch.r2 import keys

pytestmark = pytest.mark.models


def _make(
    src: Path,
    dest: Path,
    *,
    size: tuple[int, int],
    frames: int | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int = 25,
    pts_ms: list[int] | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Re-encode the first ``frames`` frames of ``src`` (all, or as many as ``pts_ms``
    gives times for, in milliseconds) at ``size`` into ``dest``."""
    out = av.open(str(dest), "w", options=options or {})
    stream = out.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
    if pts_ms is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
        frames = len(pts_ms)
    with av.open(str(src)) as inp:
        for n, frame in enumerate(inp.decode(video=0)):
            if frames is not None and n >= frames:
                break
            vf = av.VideoFrame.from_ndarray(
                cv2.resize(frame.to_ndarray(format="bgr24"), size), format="bgr24"
            )
            if pts_ms is not None:
                vf.pts, vf.time_base = pts_ms[n], Fraction(1, 1000)
            for packet in stream.encode(vf):
                out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return dest


@pytest.mark.parametrize(
    ("name", "size", "frames", "codec", "pix_fmt"),
    [
        ("one_frame.mp4", (320, 240), 1, "libx264", "yuv420p"),
        ("tiny_16x16.mp4", (16, 16), 30, "libx264", "yuv420p"),
        ("portrait.mp4", (240, 426), 60, "libx264", "yuv420p"),
        ("odd_size.mkv", (161, 97), 40, "libvpx-vp9", "yuv420p"),
        ("full_chroma.mp4", (320, 180), 30, "libx264", "yuv444p"),
    ],
)
def test_unusual_valid_videos_complete(
    media, models, make_settings, tmp_path, name, size, frames, codec, pix_fmt
):
    video = _make(
        media / "cuts_h264.mp4",
        tmp_path / name,
        size=size,
        frames=frames,
        codec=codec,
        pix_fmt=pix_fmt,
    )
    settings = make_settings()
    store, job_id, manifest = _run(video, settings, models)
    assert manifest.state == "completed", manifest.error
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    assert results["video"]["frames"] == frames
    assert (results["video"]["width"], results["video"]["height"]) == size
    assert results["frames"][0]["frame"] == 0
    original = store.get_bytes(results["frames"][0]["images"]["original"])
    image = cv2.imdecode(np.frombuffer(original, np.uint8), cv2.IMREAD_COLOR)
    assert (image.shape[1], image.shape[0]) == size


def test_variable_frame_rate_times_come_from_the_container(media, models, make_settings, tmp_path):
    """Frames 0-29 every 20 ms, then every 100 ms: frame / fps would be seconds off. Every
    time_s is the presentation time and sampling follows it."""
    pts_ms = [i * 20 for i in range(30)] + [600 + i * 100 for i in range(1, 31)]
    dest = _make(
        media / "cuts_h264.mp4", tmp_path / "vfr.mkv", size=(320, 180), rate=50, pts_ms=pts_ms
    )

    settings = make_settings()
    store, job_id, manifest = _run(dest, settings, models)
    assert manifest.state == "completed", manifest.error
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    assert results["video"]["frames"] == len(pts_ms)
    times = {f["frame"]: f["time_s"] for f in results["frames"]}
    for n, t in times.items():
        assert t == pytest.approx(pts_ms[n] / 1000, abs=1e-3)
    # One sample a second of presentation time: 0 s, 1.0 s (frame 33), 2.0 s (frame 43)...
    ticks = [n for n in times if n not in {s["start_frame"] for s in results["scenes"]}]
    assert ticks == [33, 43, 53]


def test_cut_off_mp4_whose_index_opens_still_fails_as_truncated(
    media, models, make_settings, tmp_path
):
    """An MP4 written with its index first (faststart) opens even when cut off; without a
    check the frames past the cut would just be missing from a 'completed' result."""
    whole = _make(
        media / "cuts_h264.mp4",
        tmp_path / "faststart.mp4",
        size=(320, 180),
        options={"movflags": "faststart"},
    )
    data = whole.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # the index really comes first
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.8)])

    settings = make_settings()
    _, _, manifest = _run(whole, settings, models)
    assert manifest.state == "completed", manifest.error
    _, _, manifest = _run(cut, settings, models)
    assert manifest.state == "failed"
    assert manifest.error.code == "truncated_video"
    assert "cut off" in manifest.error.message
