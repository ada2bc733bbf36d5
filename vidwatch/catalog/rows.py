"""What the catalog keeps of a job, read from its documents: pure functions of status.json
(a dict, as stored) and results.json (``Results``), so that indexing is tested without a
store or a database.

A scene's labels are the labels of its sampled frames (objects and segments) and of its
``label_segments``; its cast is ``scenes[*].people``, else the people of its frames' faces.
A person is known by their library id where results.json links them to the library, else
by a per-job id ``<job_id>:<person>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vidwatch.pipeline.documents import Results
from vidwatch.pipeline.views import frame_labels, scene_cast
from vidwatch.r2 import keys

Names = Callable[[list[str]], dict[str, str | None]]
"""``names(library_ids) -> {library_id: name or None}``: the people library's names."""

SCENE_BITS = 16
MAX_SCENES = 1 << SCENE_BITS
"""Scenes kept per job (the rest of a longer video are not searchable)."""
SLOT_BITS = 5
SLOTS = 1 << SLOT_BITS
"""Jobs created in the same millisecond share its key range in up to this many slots."""
MAX_MS = (1 << (63 - SCENE_BITS - SLOT_BITS)) - 1


def scene_key(base: int, scene: int) -> int:
    """A scene's sort key: the catalog's scenes sort by it, descending, as search lists
    them (newest job first, then scene order within the job)."""
    return base + (MAX_SCENES - 1 - scene)


def job_base(created_ms: int, slot: int) -> int:
    """The lowest scene key of a job created at ``created_ms`` in ``slot``."""
    ms = max(0, min(created_ms, MAX_MS))
    return ((ms << SLOT_BITS) | slot) << SCENE_BITS


def base_range_of_ms(low_ms: int, high_ms: int) -> tuple[int, int]:
    """The scene keys of every job created from ``low_ms`` to ``high_ms`` inclusive."""
    return job_base(low_ms, 0), job_base(high_ms, SLOTS - 1) + MAX_SCENES - 1


def parse_time_ms(value: Any) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 time (``Z`` or an offset; naive means
    UTC), None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@dataclass(frozen=True)
class JobRow:
    """One job's manifest summary."""

    job_id: str
    state: str | None
    stage: str | None
    origin: str | None
    file_name: str | None
    created_at: str | None
    created_ms: int
    updated_at: str | None
    finished_at: str | None
    duration_s: float | None
    percent: float
    error_code: str | None
    duplicate_of: str | None


@dataclass(frozen=True)
class PersonRow:
    job_id: str
    person: int
    person_id: str
    library_id: str | None
    name: str | None
    thumbnail: str | None
    first_s: float | None
    last_s: float | None


@dataclass(frozen=True)
class SceneRow:
    scene: int
    start_s: float
    end_s: float
    keyframe: int | None
    thumbnail: str | None
    labels: tuple[str, ...]
    people: tuple[int, ...]
    """Per-job person numbers (``PersonRow.person``)."""


@dataclass(frozen=True)
class SegmentRow:
    label: str
    scene: int
    start_s: float
    end_s: float | None
    samples: int
    max_confidence: float


@dataclass
class JobDocs:
    """Everything the catalog keeps of one job."""

    job: JobRow
    scenes: list[SceneRow] = field(default_factory=list)
    people: list[PersonRow] = field(default_factory=list)
    segments: list[SegmentRow] = field(default_factory=list)
    has_results: bool = False


def per_job_person_id(job_id: str, person: int) -> str:
    return f"{job_id}:{person}"


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _part(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    return value if isinstance(value, dict) else {}


def job_row(status: dict[str, Any]) -> JobRow:
    """The manifest summary of a status.json (already known to name a valid job id)."""
    job_id = str(status["job_id"])
    source, summary = _part(status, "source"), _part(status, "summary")
    progress, error = _part(status, "progress"), _part(status, "error")
    created_ms = parse_time_ms(status.get("created_at"))
    if created_ms is None:
        created_ms = int(keys.job_id_time(job_id) * 1000)
    percent = _float(progress.get("percent")) or 0.0
    if status.get("state") == "completed":
        percent = 100.0
    return JobRow(
        job_id=job_id,
        state=_text(status.get("state")),
        stage=_text(status.get("stage")),
        origin=_text(source.get("origin")),
        file_name=_text(source.get("filename")),
        created_at=_text(status.get("created_at")),
        created_ms=created_ms,
        updated_at=_text(status.get("updated_at")),
        finished_at=_text(status.get("finished_at")),
        duration_s=_float(summary.get("duration_s")),
        percent=percent,
        error_code=_text(error.get("code")),
        duplicate_of=_text(status.get("duplicate_of")),
    )


def _people(job_id: str, results: Results, names: Names | None) -> list[PersonRow]:
    linked = sorted({p.library_id for p in results.people if p.library_id})
    resolved = names(linked) if names is not None and linked else {}
    rows = []
    for p in results.people:
        library_id = p.library_id or None
        name = resolved.get(library_id) if library_id else None
        recorded = p.model_extra.get("name") if p.model_extra else None
        rows.append(
            PersonRow(
                job_id=job_id,
                person=p.person,
                person_id=library_id or per_job_person_id(job_id, p.person),
                library_id=library_id,
                name=_text(name) or (_text(recorded) if library_id else None),
                thumbnail=_text(p.thumbnail),
                first_s=_float(p.first_s),
                last_s=_float(p.last_s),
            )
        )
    return rows


def _scene_labels(results: Results) -> dict[int, set[str]]:
    labels: dict[int, set[str]] = {}
    for frame in results.frames:
        labels.setdefault(frame.scene, set()).update(frame_labels(frame))
    for segment in results.label_segments:
        if segment.label:
            labels.setdefault(segment.scene, set()).add(segment.label)
    return labels


def _segments(results: Results) -> list[SegmentRow]:
    return [
        SegmentRow(
            label=s.label,
            scene=s.scene,
            start_s=_float(s.start_s) or 0.0,
            end_s=_float(s.end_s),
            samples=s.samples,
            max_confidence=_float(s.max_confidence) or 0.0,
        )
        for s in results.label_segments
        if s.label
    ]


def scene_rows(results: Results) -> list[SceneRow]:
    """The scenes of a results.json with their keyframe image, labels and cast."""
    originals = {f.frame: f.images.original for f in results.frames}
    labels, cast = _scene_labels(results), scene_cast(results)
    rows = []
    for scene in results.scenes:
        index = scene.index
        if not 0 <= index < MAX_SCENES:
            continue
        rows.append(
            SceneRow(
                scene=index,
                start_s=_float(scene.start_s) or 0.0,
                end_s=_float(scene.end_s) or 0.0,
                keyframe=scene.keyframe,
                thumbnail=_text(originals.get(scene.keyframe)),
                labels=tuple(sorted(labels.get(index, ()))),
                people=tuple(cast.get(index, ())),
            )
        )
    return rows


def job_docs(
    status: dict[str, Any], results: Results | None, names: Names | None = None
) -> JobDocs:
    """What the catalog keeps of a job. ``results`` is the job's own results.json (None for
    a job not completed, or a duplicate, whose scenes are its original's)."""
    row = job_row(status)
    docs = JobDocs(row)
    if results is None:
        return docs
    docs.has_results = True
    docs.scenes = scene_rows(results)
    docs.people = _people(row.job_id, results, names)
    docs.segments = _segments(results)
    return docs


def search_words(*texts: str | None) -> str:
    """The text a scene is found by: file name, labels and names, as one string."""
    return " ".join(t for t in texts if t)


def words_of(values: Iterable[str | None]) -> list[str]:
    return [v for v in values if v]
