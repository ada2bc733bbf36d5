"""What the page and the exports show, derived from results.json: each scene's cast and top
labels, and the appearances of labels and people as time ranges. Pure functions of the
document; nothing heavy is imported here (the API uses them)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Appearance:
    """A label or a person seen from ``start_s`` to ``end_s`` inside one scene."""

    kind: str  # "label" or "person"
    name: str
    scene: int
    start_s: float
    end_s: float


def frame_labels(frame: dict[str, Any]) -> set[str]:
    objects = frame.get("objects") or []
    segments = frame.get("segments") or []
    return {str(o.get("label")) for o in [*objects, *segments] if o.get("label") is not None}


def frame_people(frame: dict[str, Any]) -> set[int]:
    return {int(f["person"]) for f in frame.get("faces") or [] if isinstance(f.get("person"), int)}


def scene_cast(results: dict[str, Any]) -> dict[int, list[int]]:
    """Scene index to the people in it: ``scenes[*].people`` where results carry it, else
    the ``person`` of the faces of the scene's sampled frames."""
    cast: dict[int, set[int]] = defaultdict(set)
    scenes = results.get("scenes") or []
    if any("people" in s for s in scenes):
        for scene in scenes:
            cast[int(scene["index"])].update(int(p) for p in scene.get("people") or [])
    else:
        for frame in results.get("frames") or []:
            cast[int(frame.get("scene", 0))].update(frame_people(frame))
    return {index: sorted(people) for index, people in cast.items()}


def scene_labels(results: dict[str, Any], top: int = 3) -> dict[int, list[str]]:
    """Scene index to its ``top`` labels, by the number of sampled frames showing each."""
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for frame in results.get("frames") or []:
        counts[int(frame.get("scene", 0))].update(frame_labels(frame))
    return {
        index: [label for label, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
        for index, c in counts.items()
    }


def appearances(results: dict[str, Any]) -> list[Appearance]:
    """Labels (``label_segments`` where results carry them) and people (from the faces'
    ``person``) as ranges: a run of consecutive sampled frames of one scene showing it, from
    the first such frame to the next sampled frame (or the scene's end)."""
    scenes = {int(s["index"]): s for s in results.get("scenes") or []}
    out: list[Appearance] = []
    segments = results.get("label_segments")
    if isinstance(segments, list):
        out += [
            Appearance(
                "label", str(s["label"]), int(s["scene"]), float(s["start_s"]), float(s["end_s"])
            )
            for s in segments
        ]
    by_scene: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for frame in results.get("frames") or []:
        by_scene[int(frame.get("scene", 0))].append(frame)
    for index, frames in sorted(by_scene.items()):
        frames.sort(key=lambda f: f["time_s"])
        scene_end = float(scenes[index]["end_s"]) if index in scenes else frames[-1]["time_s"]
        kinds: list[tuple[str, Any]] = [("person", frame_people)]
        if not isinstance(segments, list):
            kinds.append(("label", frame_labels))
        for kind, seen_in in kinds:
            open_runs: dict[Any, float] = {}
            for i, frame in enumerate(frames):
                seen = seen_in(frame)
                next_s = frames[i + 1]["time_s"] if i + 1 < len(frames) else scene_end
                for name in seen:
                    open_runs.setdefault(name, float(frame["time_s"]))
                for name in [n for n in open_runs if n not in seen]:
                    out.append(
                        Appearance(kind, str(name), index, open_runs.pop(name), frame["time_s"])
                    )
                if i + 1 == len(frames):
                    for name, start in open_runs.items():
                        out.append(Appearance(kind, str(name), index, start, float(next_s)))
    out.sort(key=lambda a: (a.start_s, a.kind, a.name))
    return out


def duration_s(results: dict[str, Any]) -> float:
    video = results.get("video") or {}
    scenes = results.get("scenes") or []
    candidates = [float(video.get("duration_s") or 0.0)]
    candidates += [float(s.get("end_s") or 0.0) for s in scenes]
    return max(candidates)


def clock(seconds: float | None, millis: bool = False) -> str:
    """``M:SS`` (``H:MM:SS`` past an hour); with ``millis`` ``.mmm`` after."""
    if seconds is None:
        return ""
    total_ms = max(0, round(float(seconds) * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{ms:03d}" if millis else text


def counted(n: Any, noun: str) -> str:
    """``1 face``, ``0 faces``, ``3 faces``: a count with its noun (nouns with a plain -s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def scene_title(scene: dict[str, Any], cast: list[int], labels: list[str]) -> str:
    """``Scene 3: Person 0, Person 2 · person, dog`` (scene numbers 1-based, as editors
    count)."""
    parts = [", ".join(f"Person {p}" for p in cast), ", ".join(labels)]
    detail = " · ".join(p for p in parts if p)
    return f"Scene {int(scene['index']) + 1}" + (f": {detail}" if detail else "")


def vtt_time(seconds: float) -> str:
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def _vtt_text(text: str) -> str:
    text = " ".join(text.split())  # a cue's text ends at a blank line
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chapters_vtt(results: dict[str, Any]) -> str:
    cast, labels = scene_cast(results), scene_labels(results)
    lines = ["WEBVTT", "Kind: chapters", ""]
    for scene in results["scenes"]:
        index = int(scene["index"])
        start = float(scene["start_s"])
        end = max(float(scene["end_s"]), start + 0.001)
        lines += [
            f"scene-{index}",
            f"{vtt_time(start)} --> {vtt_time(end)}",
            _vtt_text(scene_title(scene, cast.get(index, []), labels.get(index, []))),
            "",
        ]
    return "\n".join(lines)
