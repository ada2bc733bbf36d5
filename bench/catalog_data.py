"""Synthetic but schema-valid jobs (status.json and results.json) for the catalog's tests and
benchmark: scenes with chosen labels and people, one sampled frame per scene (its keyframe),
each person of a scene with a face there. ``Results`` and ``Manifest`` accept what this
writes (tests/catalog checks it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vidwatch import __version__
from vidwatch.config.settings import load_settings, result_settings
from vidwatch.jobs.manifest import utc_at
from vidwatch.r2 import keys

FPS = 25.0
SCENE_S = 4.0


@dataclass
class SceneSpec:
    labels: Sequence[str] = ()
    people: Sequence[int] = ()
    """Per-job person numbers seen in the scene."""


@dataclass
class JobSpecDocs:
    job_id: str
    file_name: str
    created_ts: float
    scenes: list[SceneSpec]
    library_ids: dict[int, str] = field(default_factory=dict)
    """Per-job person -> library id (people without one are anonymous)."""
    origin: str = "bucket"


def _box(i: int) -> list[float]:
    return [10.0 + i, 20.0, 110.0 + i, 140.0]


def results_doc(spec: JobSpecDocs) -> dict[str, Any]:
    job_id = spec.job_id
    scenes, frames, segments = [], [], []
    appearances: dict[int, list[tuple[int, int, float]]] = {}
    labels_seen: dict[str, list[float]] = {}
    for index, scene in enumerate(spec.scenes):
        start_f = int(index * SCENE_S * FPS)
        end_f = int((index + 1) * SCENE_S * FPS)
        start_s, end_s = start_f / FPS, end_f / FPS
        people = sorted(set(scene.people))
        scenes.append(
            {
                "index": index,
                "start_frame": start_f,
                "end_frame": end_f,
                "start_s": start_s,
                "end_s": end_s,
                "keyframe": start_f,
                "people": people,
            }
        )
        objects = [
            {"label": label, "class_id": n, "confidence": 0.8, "box_xyxy": _box(n)}
            for n, label in enumerate(scene.labels)
        ]
        faces = [
            {
                "confidence": 0.99,
                "box_xyxy": _box(p),
                "landmarks": [[1.0, 1.0]] * 5,
                "person": p,
            }
            for p in people
        ]
        frames.append(
            {
                "frame": start_f,
                "time_s": start_s,
                "scene": index,
                "objects": objects,
                "segments": [],
                "faces": faces,
                "images": {
                    kind: keys.frame_image_key(job_id, kind, start_f) for kind in keys.IMAGE_KINDS
                },
                "json": keys.frame_json_key(job_id, start_f),
                "toon": None,
            }
        )
        for label in scene.labels:
            segments.append(
                {
                    "label": label,
                    "scene": index,
                    "start_s": start_s,
                    "end_s": end_s,
                    "samples": 1,
                    "max_confidence": 0.8,
                }
            )
            labels_seen.setdefault(label, []).append(start_s)
        for p in people:
            appearances.setdefault(p, []).append((start_f, index, start_s))
    people_docs = []
    for p, seen in sorted(appearances.items()):
        entry: dict[str, Any] = {
            "person": p,
            "faces": len(seen),
            "frames": [f for f, _, _ in seen],
            "scenes": sorted({s for _, s, _ in seen}),
            "first_s": seen[0][2],
            "last_s": seen[-1][2],
            "thumbnail": keys.person_thumbnail_key(job_id, p),
        }
        if p in spec.library_ids:
            entry["library_id"] = spec.library_ids[p]
        people_docs.append(entry)
    duration = len(spec.scenes) * SCENE_S
    n_frames = int(duration * FPS)
    return {
        "schema_version": 1,
        "job_id": job_id,
        "video": {
            "fps": FPS,
            "frames": n_frames,
            "width": 640,
            "height": 360,
            "duration_s": duration,
            "codec": "h264",
            "container": "mov,mp4,m4a,3gp,3g2,mj2",
            "rotation": 0,
            "coded_width": 640,
            "coded_height": 360,
        },
        "scenes": scenes,
        "frames": frames,
        "people": people_docs,
        "label_segments": segments,
        "summary": {
            "labels": {
                label: {"frames": len(times), "first_s": times[0], "last_s": times[-1]}
                for label, times in sorted(labels_seen.items())
            },
            "faces": {
                "frames": sum(1 for s in spec.scenes if s.people),
                "max_in_frame": max((len(set(s.people)) for s in spec.scenes), default=0),
            },
            "frames_analyzed": len(frames),
            "people": len(people_docs),
        },
        "provenance": {
            "vidwatch_version": __version__,
            "source_sha256": None,
            "models": {
                role: {"name": "synthetic", "sha256": None}
                for role in ("detect", "segment", "faces", "identities")
            },
            # The declared result-changing settings at their defaults, as a job records them.
            "settings": {**result_settings(load_settings({})), "scene_detector": "content"},
            "device": "cpu",
            "toon": {"enabled": False, "library": None},
        },
        "timings_s": {
            "decode": 0.0,
            "model_stage_wait": 0.0,
            "scenes": 0.0,
            "models": 0.0,
            "identities": 0.0,
            "write": 0.0,
            "drain": 0.0,
            "wall": 0.0,
        },
        "stats": {
            "frames_decoded": n_frames,
            "decodes_per_frame": 1.0,
            "frames_analyzed": len(frames),
            "face_descriptors": 0,
            "faces_reused": 0,
        },
        "exports": {},
    }


def status_doc(spec: JobSpecDocs, state: str = "completed") -> dict[str, Any]:
    created = utc_at(spec.created_ts)
    ended = utc_at(spec.created_ts + 30)
    labels = sorted({label for s in spec.scenes for label in s.labels})
    people = {p for s in spec.scenes for p in s.people}
    doc: dict[str, Any] = {
        "schema_version": 1,
        "job_id": spec.job_id,
        "state": state,
        "stage": "done" if state in ("completed", "failed") else "analyzing",
        "progress": {"frames_done": 0, "frames_total": None, "percent": 0.0},
        "source": {
            "key": keys.source_key(spec.job_id, "mp4"),
            "origin": spec.origin,
            "filename": spec.file_name,
            "bytes": 1000,
            "sha256": None,
        },
        "created_at": created,
        "started_at": created,
        "updated_at": ended,
        "finished_at": ended if state in ("completed", "failed") else None,
        "worker": {"host": "bench", "pid": 1},
        "error": None,
        "warnings": [],
        "attempts": 1,
        "results_key": keys.results_key(spec.job_id) if state == "completed" else None,
    }
    if state == "completed":
        doc["progress"]["percent"] = 100.0
        doc["summary"] = {
            "scenes": len(spec.scenes),
            "frames_analyzed": len(spec.scenes),
            "labels": labels,
            "faces": {"frames": 0, "max_in_frame": 0},
            "people": len(people),
            "duration_s": len(spec.scenes) * SCENE_S,
        }
    if state == "failed":
        doc["error"] = {"code": "unreadable_video", "message": "synthetic"}
    return doc


def put_job(store: Any, spec: JobSpecDocs, state: str = "completed") -> None:
    """Write the job's documents into a store (results.json first, as a job does)."""
    if state == "completed":
        store.put_bytes(
            keys.results_key(spec.job_id),
            json.dumps(results_doc(spec)).encode(),
            content_type="application/json",
        )
    store.put_bytes(
        keys.status_key(spec.job_id),
        json.dumps(status_doc(spec, state)).encode(),
        content_type="application/json",
    )
