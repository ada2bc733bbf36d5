"""What results.json says about the whole video, built from the frame documents: each
person's appearances, each scene's cast, and the label segments (when each label is on
screen)."""

from __future__ import annotations

from typing import Any


def people(frames: list[dict[str, Any]], thumbnails: dict[int, str | None]) -> list[dict[str, Any]]:
    """One entry per person id found in ``frames`` (sorted by frame), by id."""
    found: dict[int, dict[str, Any]] = {}
    for doc in frames:
        for face in doc["faces"]:
            k = face.get("person")
            if k is None:
                continue
            entry = found.setdefault(
                k,
                {
                    "person": k,
                    "faces": 0,
                    "frames": [],
                    "scenes": set(),
                    "first_s": doc["time_s"],
                    "last_s": doc["time_s"],
                    "thumbnail": thumbnails.get(k),
                },
            )
            entry["faces"] += 1
            if not entry["frames"] or entry["frames"][-1] != doc["frame"]:
                entry["frames"].append(doc["frame"])
            entry["scenes"].add(doc["scene"])
            entry["last_s"] = doc["time_s"]
    return [{**e, "scenes": sorted(e["scenes"])} for _, e in sorted(found.items())]


def scene_people(frames: list[dict[str, Any]], scene_count: int) -> list[list[int]]:
    """The sorted person ids seen in each scene (its cast)."""
    cast: list[set[int]] = [set() for _ in range(scene_count)]
    for doc in frames:
        for face in doc["faces"]:
            if face.get("person") is not None:
                cast[doc["scene"]].add(face["person"])
    return [sorted(c) for c in cast]


def label_segments(
    frames: list[dict[str, Any]], scenes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """For every label of objects or segments, the runs of consecutive sampled frames of one
    scene where it is seen. A run ends at the presentation time of the first sampled frame
    after it, or at its scene's end. Sorted by start, then label."""
    out: list[dict[str, Any]] = []
    open_runs: dict[str, dict[str, Any]] = {}

    def close(label: str, end_s: float) -> None:
        run = open_runs.pop(label)
        run["end_s"] = end_s
        out.append(run)

    scene_of_prev: int | None = None
    for doc in frames:
        scene = doc["scene"]
        if scene_of_prev is not None and scene != scene_of_prev:
            for label in list(open_runs):
                close(label, scenes[scene_of_prev]["end_s"])
        seen: dict[str, float] = {}
        for det in (*doc["objects"], *doc["segments"]):
            seen[det["label"]] = max(seen.get(det["label"], 0.0), det["confidence"])
        for label in list(open_runs):
            if label not in seen:
                close(label, doc["time_s"])
        for label, confidence in seen.items():
            run = open_runs.get(label)
            if run is None:
                open_runs[label] = {
                    "label": label,
                    "scene": scene,
                    "start_s": doc["time_s"],
                    "end_s": None,
                    "samples": 1,
                    "max_confidence": confidence,
                }
            else:
                run["samples"] += 1
                run["max_confidence"] = max(run["max_confidence"], confidence)
        scene_of_prev = scene
    if scene_of_prev is not None:
        for label in list(open_runs):
            close(label, scenes[scene_of_prev]["end_s"])
    out.sort(key=lambda r: (r["start_s"], r["label"]))
    return out
