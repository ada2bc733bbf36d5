"""What results.json says about the whole video, built from the sampled frames: each
person's appearances, each scene's cast, and the label segments (when each label is on
screen)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vidwatch.pipeline.documents import FrameEntry, LabelSegment, PersonEntry, SceneEntry


@dataclass
class _Seen:
    """A person's appearances as the frames are read."""

    first_s: float
    last_s: float
    faces: int = 0
    frames: list[int] = field(default_factory=list)
    scenes: set[int] = field(default_factory=set)


def people(frames: Sequence[FrameEntry], thumbnails: dict[int, str | None]) -> list[PersonEntry]:
    """One entry per person id found in ``frames`` (sorted by frame), by id."""
    found: dict[int, _Seen] = {}
    for frame in frames:
        for face in frame.faces:
            k = face.person
            if k is None:
                continue
            seen = found.setdefault(k, _Seen(first_s=frame.time_s, last_s=frame.time_s))
            seen.faces += 1
            if not seen.frames or seen.frames[-1] != frame.frame:
                seen.frames.append(frame.frame)
            seen.scenes.add(frame.scene)
            seen.last_s = frame.time_s
    return [
        PersonEntry(
            person=k,
            faces=seen.faces,
            frames=seen.frames,
            scenes=sorted(seen.scenes),
            first_s=seen.first_s,
            last_s=seen.last_s,
            thumbnail=thumbnails.get(k),
        )
        for k, seen in sorted(found.items())
    ]


def scene_people(frames: Sequence[FrameEntry], scene_count: int) -> list[list[int]]:
    """The sorted person ids seen in each scene (its cast)."""
    cast: list[set[int]] = [set() for _ in range(scene_count)]
    for frame in frames:
        for face in frame.faces:
            if face.person is not None:
                cast[frame.scene].add(face.person)
    return [sorted(c) for c in cast]


def label_segments(
    frames: Sequence[FrameEntry], scenes: Sequence[SceneEntry]
) -> list[LabelSegment]:
    """For every label of objects or segments, the runs of consecutive sampled frames of one
    scene where it is seen. A run ends at the presentation time of the first sampled frame
    after it, or at its scene's end. Sorted by start, then label."""
    out: list[LabelSegment] = []
    open_runs: dict[str, LabelSegment] = {}

    def close(label: str, end_s: float) -> None:
        run = open_runs.pop(label)
        run.end_s = end_s
        out.append(run)

    scene_of_prev: int | None = None
    for frame in frames:
        scene = frame.scene
        if scene_of_prev is not None and scene != scene_of_prev:
            for label in list(open_runs):
                close(label, scenes[scene_of_prev].end_s)
        seen: dict[str, float] = {}
        for det in (*frame.objects, *frame.segments):
            seen[det.label] = max(seen.get(det.label, 0.0), det.confidence)
        for label in list(open_runs):
            if label not in seen:
                close(label, frame.time_s)
        for label, confidence in seen.items():
            run = open_runs.get(label)
            if run is None:
                open_runs[label] = LabelSegment(
                    label=label,
                    scene=scene,
                    start_s=frame.time_s,
                    end_s=None,
                    samples=1,
                    max_confidence=confidence,
                )
            else:
                run.samples += 1
                run.max_confidence = max(run.max_confidence, confidence)
        scene_of_prev = scene
    if scene_of_prev is not None:
        for label in list(open_runs):
            close(label, scenes[scene_of_prev].end_s)
    out.sort(key=lambda r: (r.start_s, r.label))
    return out
