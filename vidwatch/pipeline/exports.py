"""Exports for players and editors, written beside results.json under
``jobs/<job_id>/analysis/exports/``:

- ``chapters.vtt``: WebVTT chapters, one cue per scene (``Scene N``: cast, top labels), cue
  times the scene's presentation times;
- ``scenes.csv``: PySceneDetect's columns and conventions (scene numbers and start frames
  1-based, end frames inclusive, i.e. our 0-based exclusive ``end_frame``), without its
  leading "Timecode List" row, so the file is plain RFC 4180 CSV;
- ``scenes.edl``: CMX 3600 through OpenTimelineIO's adapter, one event per scene;
- ``timeline.otio``: one clip per scene, markers for the appearances of labels and people.
"""

from __future__ import annotations

import csv
import io

import opentimelineio as otio

from vidwatch.pipeline.documents import Results
from vidwatch.pipeline.views import (
    appearances,
    chapters_vtt,
    scene_cast,
    scene_labels,
    scene_title,
)
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore, PutItem
from vidwatch.times import video_time

SMPTE_RATES = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 48.0, 50.0, 60000 / 1001, 60.0)
_MARKER_COLORS = {"label": otio.schema.MarkerColor.CYAN, "person": otio.schema.MarkerColor.GREEN}


def _csv_timecode(seconds: float) -> str:
    return video_time(seconds, hours=True)  # PySceneDetect's HH:MM:SS.nnn


def scenes_csv(results: Results) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "Scene Number",
            "Start Frame",
            "Start Timecode",
            "Start Time (seconds)",
            "End Frame",
            "End Timecode",
            "End Time (seconds)",
            "Length (frames)",
            "Length (timecode)",
            "Length (seconds)",
        ]
    )
    for scene in results.scenes:
        start_s, end_s = scene.start_s, scene.end_s
        writer.writerow(
            [
                scene.index + 1,
                scene.start_frame + 1,
                _csv_timecode(start_s),
                f"{start_s:.3f}",
                scene.end_frame,
                _csv_timecode(end_s),
                f"{end_s:.3f}",
                scene.end_frame - scene.start_frame,
                _csv_timecode(end_s - start_s),
                f"{end_s - start_s:.3f}",
            ]
        )
    return out.getvalue()


def edl_rate(fps: float) -> float:
    """The EDL's timecode rate: the SMPTE rate within 0.01 of ``fps``, else (an unusual or
    variable rate) the smallest SMPTE rate above it, and the scenes are placed by time."""
    for rate in SMPTE_RATES:
        if abs(rate - fps) < 0.01:
            return rate
    return next((r for r in SMPTE_RATES if r >= fps), 60.0)


def _source_name(source_key: str | None) -> str:
    if source_key:
        return source_key.rsplit("/", 1)[-1]
    return "source"


def timeline(
    results: Results, *, rate: float | None = None, source_key: str | None = None
) -> otio.schema.Timeline:
    """One clip per scene on one video track, at ``rate`` (the video's frame rate by
    default: clip ranges are then the scenes' frames exactly); markers on each clip for the
    labels and people seen in it."""
    video = results.video
    fps = video.fps or 25.0
    rate = rate or fps
    exact = abs(rate - fps) < 0.01
    name = _source_name(source_key)
    rt = otio.opentime

    def at(frame: int, seconds: float) -> otio.opentime.RationalTime:
        return rt.RationalTime(frame, rate) if exact else rt.from_seconds(seconds, rate).round()

    total = video.frames or results.scenes[-1].end_frame
    available = rt.TimeRange(at(0, 0.0), at(total, video.duration_s or 0.0))
    cast, labels = scene_cast(results), scene_labels(results)
    seen = appearances(results)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for scene in results.scenes:
        index = scene.index
        first, stop = scene.start_frame, scene.end_frame
        start_s, end_s = scene.start_s, scene.end_s
        start = at(first, start_s)
        clip = otio.schema.Clip(
            name=scene_title(scene, cast.get(index, []), labels.get(index, [])),
            media_reference=otio.schema.ExternalReference(
                target_url=name, available_range=available
            ),
            source_range=rt.TimeRange(start, at(stop, end_s) - start),
            metadata={
                "vidwatch": {
                    "job_id": results.job_id,
                    "scene": index,
                    "start_frame": first,
                    "end_frame": stop,
                    "start_s": start_s,
                    "end_s": end_s,
                    "people": cast.get(index, []),
                    "labels": labels.get(index, []),
                }
            },
        )
        for a in (a for a in seen if a.scene == index):
            # Presentation times to the clip's media time, through the scene's first frame.
            a_start = start + rt.from_seconds(max(0.0, a.start_s - start_s), rate)
            a_len = rt.from_seconds(max(0.0, min(a.end_s, end_s) - max(a.start_s, start_s)), rate)
            label = f"Person {a.name}" if a.kind == "person" else a.name
            clip.markers.append(
                otio.schema.Marker(
                    name=label,
                    marked_range=rt.TimeRange(a_start.round(), a_len.round()),
                    color=_MARKER_COLORS[a.kind],
                    metadata={"vidwatch": {"kind": a.kind, "start_s": a.start_s, "end_s": a.end_s}},
                )
            )
        track.append(clip)
    out = otio.schema.Timeline(name=name, metadata={"vidwatch": {"job_id": results.job_id}})
    out.tracks.append(track)
    return out


def scenes_edl(results: Results, *, source_key: str | None = None) -> str:
    rate = edl_rate(results.video.fps or 25.0)
    edl = timeline(results, rate=rate, source_key=source_key)
    edl.name = f"vidwatch {results.job_id}"
    text: str = otio.adapters.write_to_string(edl, "cmx_3600", rate=rate)
    return text


def render_exports(results: Results, *, source_key: str | None = None) -> dict[str, bytes]:
    """Every export by its results.json name, as bytes."""
    return {
        "chapters": chapters_vtt(results).encode(),
        "scenes_csv": scenes_csv(results).encode(),
        "edl": scenes_edl(results, source_key=source_key).encode(),
        "otio": otio.adapters.write_to_string(
            timeline(results, source_key=source_key), "otio_json"
        ).encode(),
    }


def write_exports(
    store: ObjectStore, job_id: str, results: Results, *, source_key: str | None = None
) -> dict[str, str]:
    """Write every export of a job; returns results.json's ``exports`` (name to key)."""
    rendered = render_exports(results, source_key=source_key)
    made = {keys.export_key(job_id, name): data for name, data in rendered.items()}
    items = [PutItem(key, data, keys.content_type_for(key)) for key, data in made.items()]
    store.put_many(items)
    return {name: keys.export_key(job_id, name) for name in rendered}
