"""What the pages, the exports and the catalog show, derived from a job's ``Results``: each
scene's cast and top labels, the appearances of labels and people as time ranges, the
chapters. Pure functions of the document; nothing heavy is imported here (the API uses
them). ``read_results`` reads a stored results.json into the model, whatever version of
ours wrote it."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from vidwatch.pipeline import timeline
from vidwatch.pipeline.documents import FrameEntry, PersonEntry, Results, SceneEntry
from vidwatch.times import video_time

ADDED_LATER = ("people", "label_segments")
"""Fields of results.json that jobs of earlier versions did not write (nor ``scenes[*]
.people``)."""


def read_results(data: Any) -> Results:
    """results.json as stored, into the model. A document of an earlier version, written
    before ``scenes[*].people`` and ``label_segments`` existed, gets them derived from its
    frames by the rules that make them now; one without ``people`` gets none, and
    ``people`` stays out of the model's ``model_fields_set`` (the page then shows no
    people section, rather than "no people"). Raises ``pydantic.ValidationError`` (a
    ``ValueError``) for anything else the model does not accept."""
    scenes = data.get("scenes") if isinstance(data, dict) else None
    if not isinstance(scenes, list):
        scenes = []
    casts_missing = bool(scenes) and not any(isinstance(s, dict) and "people" in s for s in scenes)
    if not isinstance(data, dict) or (
        all(name in data for name in ADDED_LATER) and not casts_missing
    ):
        return Results.model_validate(data)
    filled: dict[str, Any] = {name: [] for name in ADDED_LATER} | data
    if casts_missing:
        filled["scenes"] = [{**s, "people": []} if isinstance(s, dict) else s for s in scenes]
    results = Results.model_validate(filled)
    if casts_missing:
        casts = timeline.scene_people(results.frames, len(results.scenes))
        for scene, cast in zip(results.scenes, casts, strict=True):
            scene.people = cast
    if "label_segments" not in data:
        results.label_segments = timeline.label_segments(results.frames, results.scenes)
    if "people" not in data:
        results.model_fields_set.discard("people")
    return results


class NamedPerson(PersonEntry):
    """A job's person with the name its library person has when the document is read
    (``GET /results``, the job page): results.json keeps the id, never the name."""

    name: str | None = None


@dataclass(frozen=True)
class Appearance:
    """A label or a person seen from ``start_s`` to ``end_s`` inside one scene."""

    kind: Literal["label", "person"]
    name: str
    scene: int
    start_s: float
    end_s: float


def frame_labels(frame: FrameEntry) -> set[str]:
    return {o.label for o in [*frame.objects, *frame.segments]}


def frame_people(frame: FrameEntry) -> set[int]:
    return {f.person for f in frame.faces if f.person is not None}


def scene_cast(results: Results) -> dict[int, list[int]]:
    """Scene index to the people in it (``scenes[*].people``)."""
    return {scene.index: sorted(set(scene.people)) for scene in results.scenes}


def scene_labels(results: Results, top: int = 3) -> dict[int, list[str]]:
    """Scene index to its ``top`` labels, by the number of sampled frames showing each."""
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for frame in results.frames:
        counts[frame.scene].update(frame_labels(frame))
    return {
        index: [label for label, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
        for index, c in counts.items()
    }


def appearances(results: Results) -> list[Appearance]:
    """Labels (``label_segments``) and people (from the faces' ``person``) as ranges: a run
    of consecutive sampled frames of one scene showing it, from the first such frame to the
    next sampled frame (or the scene's end)."""
    scenes = {s.index: s for s in results.scenes}
    out = [
        Appearance(
            "label",
            s.label,
            s.scene,
            s.start_s,
            s.end_s if s.end_s is not None else _scene_end(scenes, s.scene, s.start_s),
        )
        for s in results.label_segments
    ]
    by_scene: dict[int, list[FrameEntry]] = defaultdict(list)
    for frame in results.frames:
        by_scene[frame.scene].append(frame)
    for index, frames in sorted(by_scene.items()):
        frames.sort(key=lambda f: f.time_s)
        scene_end = _scene_end(scenes, index, frames[-1].time_s)
        open_runs: dict[int, float] = {}
        for i, frame in enumerate(frames):
            seen = frame_people(frame)
            next_s = frames[i + 1].time_s if i + 1 < len(frames) else scene_end
            for person in seen:
                open_runs.setdefault(person, frame.time_s)
            for person in [p for p in open_runs if p not in seen]:
                out.append(
                    Appearance("person", str(person), index, open_runs.pop(person), frame.time_s)
                )
            if i + 1 == len(frames):
                for person, start in open_runs.items():
                    out.append(Appearance("person", str(person), index, start, next_s))
    out.sort(key=lambda a: (a.start_s, a.kind, a.name))
    return out


def _scene_end(scenes: dict[int, SceneEntry], index: int, otherwise: float) -> float:
    return scenes[index].end_s if index in scenes else otherwise


def duration_s(results: Results) -> float:
    return max([results.video.duration_s or 0.0, *(s.end_s for s in results.scenes)])


def scene_title(scene: SceneEntry, cast: list[int], labels: list[str]) -> str:
    """``Scene 3: Person 0, Person 2 · person, dog`` (scene numbers 1-based, as editors
    count)."""
    parts = [", ".join(f"Person {p}" for p in cast), ", ".join(labels)]
    detail = " · ".join(p for p in parts if p)
    return f"Scene {scene.index + 1}" + (f": {detail}" if detail else "")


def _vtt_text(text: str) -> str:
    text = " ".join(text.split())  # a cue's text ends at a blank line
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chapters_vtt(results: Results) -> str:
    """WebVTT chapters, one cue per scene (``Scene N``: cast, top labels)."""
    cast, labels = scene_cast(results), scene_labels(results)
    lines = ["WEBVTT", "Kind: chapters", ""]
    for scene in results.scenes:
        start = scene.start_s
        end = max(scene.end_s, start + 0.001)
        lines += [
            f"scene-{scene.index}",
            f"{video_time(start, hours=True)} --> {video_time(end, hours=True)}",
            _vtt_text(scene_title(scene, cast.get(scene.index, []), labels.get(scene.index, []))),
            "",
        ]
    return "\n".join(lines)
