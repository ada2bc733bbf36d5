"""Exports parse back with the libraries that read them (OpenTimelineIO for the EDL and the
.otio, webvtt-py for the chapters, csv for the scene list) and agree with results.json scene
for scene: on a real job, and on documents with what a real job here does not give (NTSC
and unusual frame rates, people, label segments, markup in labels)."""

from __future__ import annotations

import csv
import io
import itertools
from typing import Any

import opentimelineio as otio
import pytest
import webvtt

from tests import documents
from vidwatch.pipeline.exports import edl_rate, render_exports
from vidwatch.r2 import keys


def _vtt_seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def check_agreement(results: dict[str, Any], files: dict[str, bytes]) -> None:
    scenes = results["scenes"]
    fps = float(results["video"]["fps"])

    # WebVTT chapters: one cue per scene, the scene's presentation times to the millisecond.
    cues = webvtt.from_string(files["chapters"].decode()).captions
    assert len(cues) == len(scenes)
    for cue, scene in zip(cues, scenes, strict=True):
        assert cue.identifier == f"scene-{scene['index']}"
        assert _vtt_seconds(cue.start) == pytest.approx(scene["start_s"], abs=5e-4)
        assert _vtt_seconds(cue.end) == pytest.approx(scene["end_s"], abs=5e-4)
        assert cue.text.startswith(f"Scene {scene['index'] + 1}")

    # PySceneDetect's CSV: 1-based scene numbers and start frames, inclusive end frames.
    rows = list(csv.DictReader(io.StringIO(files["scenes_csv"].decode())))
    assert len(rows) == len(scenes)
    for row, scene in zip(rows, scenes, strict=True):
        assert int(row["Scene Number"]) == scene["index"] + 1
        assert int(row["Start Frame"]) == scene["start_frame"] + 1
        assert int(row["End Frame"]) == scene["end_frame"]
        assert int(row["Length (frames)"]) == scene["end_frame"] - scene["start_frame"]
        assert float(row["Start Time (seconds)"]) == pytest.approx(scene["start_s"], abs=5e-4)
        assert float(row["End Time (seconds)"]) == pytest.approx(scene["end_s"], abs=5e-4)

    # The .otio: one clip per scene, exactly the scene's frames at the video's rate.
    tl = otio.adapters.read_from_string(files["otio"].decode(), "otio_json")
    clips = list(tl.find_clips())
    assert len(clips) == len(scenes)
    for clip, scene in zip(clips, scenes, strict=True):
        assert clip.source_range.start_time.rate == pytest.approx(fps)
        assert clip.source_range.start_time.value == scene["start_frame"]
        assert clip.source_range.duration.value == scene["end_frame"] - scene["start_frame"]
        assert clip.metadata["vidwatch"]["scene"] == scene["index"]
        for marker in clip.markers:  # every marker inside its clip
            assert clip.source_range.contains(marker.marked_range.start_time)

    # CMX 3600: one event per scene; at a SMPTE rate the timecodes are the frames.
    rate = edl_rate(fps)
    edl = otio.adapters.read_from_string(files["edl"].decode(), "cmx_3600", rate=rate)
    events = list(edl.find_clips())
    assert len(events) == len(scenes)
    for event, scene in zip(events, scenes, strict=True):
        start = event.source_range.start_time
        end = event.source_range.end_time_exclusive()
        if abs(rate - fps) < 0.01:
            assert round(start.value) == scene["start_frame"]
            assert round(end.value) == scene["end_frame"]
        assert start.to_seconds() == pytest.approx(
            scene["start_frame"] / fps if abs(rate - fps) < 0.01 else scene["start_s"], abs=1 / rate
        )
        assert end.to_seconds() - start.to_seconds() == pytest.approx(
            (scene["end_frame"] - scene["start_frame"]) / fps
            if abs(rate - fps) < 0.01
            else scene["end_s"] - scene["start_s"],
            abs=1.01 / rate,
        )


@pytest.mark.models
def test_a_real_jobs_exports_agree_with_its_results(analysed_job):
    job = analysed_job
    results = job.results
    assert set(results["exports"]) == set(keys.EXPORT_FILES)
    files = {}
    for name, key in results["exports"].items():
        assert key == keys.export_key(job.job_id, name)
        assert job.store.head(key).content_type == keys.content_type_for(key)
        files[name] = job.store.get_bytes(key)
    assert len(results["scenes"]) == 6  # the truth: cuts at 50, 90, 150, 195, 225
    check_agreement(results, files)


def _doc(fps: float, cuts: list[int], frames: int, *, vfr: bool = False) -> dict[str, Any]:
    bounds = [0, *cuts, frames]
    # VFR: presentation times drift from frame / fps, as a phone recording's do.
    time_of = (lambda n: n / fps * (1.0 + 0.03 * (n % 7) / 7)) if vfr else (lambda n: n / fps)
    scenes = [
        {
            "index": i,
            "start_frame": a,
            "end_frame": b,
            "start_s": round(time_of(a), 4),
            "end_s": round(time_of(b), 4),
            "keyframe": a,
            "people": [0] if i % 2 == 0 else [],
        }
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    sampled = []
    for s in scenes:
        for n in (s["start_frame"], (s["start_frame"] + s["end_frame"]) // 2):
            sampled.append(
                {
                    "frame": n,
                    "time_s": round(time_of(n), 4),
                    "scene": s["index"],
                    "objects": [{"label": "<b>cat & dog</b>", "confidence": 0.9}],
                    "segments": [],
                    "faces": [{"person": 0, "confidence": 0.99}] if s["people"] else [],
                }
            )
    return {
        "job_id": "01JD3ZZZZZZZZZZZZZZZZZZZZZ",
        "video": {"fps": fps, "frames": frames, "duration_s": round(time_of(frames), 4)},
        "scenes": scenes,
        "frames": sampled,
        "people": [{"person": 0, "scenes": [s["index"] for s in scenes if s["people"]]}],
        "label_segments": [
            {
                "label": "<b>cat & dog</b>",
                "scene": s["index"],
                "start_s": s["start_s"],
                "end_s": s["end_s"],
                "samples": 2,
                "max_confidence": 0.9,
            }
            for s in scenes
        ],
    }


@pytest.mark.parametrize(
    ("fps", "vfr"), [(30000 / 1001, False), (24000 / 1001, False), (12.5, False), (29.5, True)]
)
def test_exports_agree_at_other_rates(fps, vfr):
    results = _doc(fps, [17, 40, 41, 90], 120, vfr=vfr)
    files = render_exports(documents.results(results), source_key="jobs/x/input/source.mov")
    check_agreement(results, files)
    vtt = files["chapters"].decode()
    assert "&lt;b&gt;cat &amp; dog&lt;/b&gt;" in vtt and "<b>" not in vtt
    assert "Scene 1: Person 0" in vtt
    tl = otio.adapters.read_from_string(files["otio"].decode(), "otio_json")
    names = {m.name for clip in tl.find_clips() for m in clip.markers}
    assert names == {"Person 0", "<b>cat & dog</b>"}
    assert "source.mov" in files["edl"].decode()
