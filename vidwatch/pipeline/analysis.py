"""The analysis of one video: decode once, in order; every frame feeds the scene tracker;
sampled frames (every 1/SAMPLE_FPS seconds and the first frame of each scene) go to the
models in batches; their images and documents are written by a pool that overlaps the next
frames' work. Nothing holds all frames: memory stays flat however long the video is.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from vidwatch import __version__
from vidwatch.detectors.registry import ModelSet
from vidwatch.detectors.types import Detections
from vidwatch.errors import JobInterrupted, VideoError
from vidwatch.pipeline import draw, timeline
from vidwatch.pipeline.identities import IdentityTracker
from vidwatch.pipeline.stages import threaded
from vidwatch.pipeline.video import Frame, VideoInfo, decode, probe
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore, PutItem

log = structlog.get_logger("vidwatch.pipeline")

SCHEMA_VERSION = 1
ProgressFn = Callable[[int, int | None], None]


class TextEncoder(Protocol):
    """Turns a frame document into TOON (the Node bridge, or a stand-in where TOON is off)."""

    version: str

    def encode(self, doc: Any) -> str: ...


@dataclass(frozen=True)
class AnalysisOptions:
    sample_fps: float
    jpeg_quality: int = 85
    batch_size: int = 4
    write_workers: int = 4
    max_pixels: int = 8192 * 8192
    max_duration_s: float = 6 * 3600
    face_identities: bool = True
    face_identity_threshold: float = 0.6
    face_identity_min_px: int = 32
    face_identity_reuse_iou: float = 0.5

    @classmethod
    def from_settings(cls, settings, **overrides) -> AnalysisOptions:
        values = {
            "face_identities": settings.face_identities,
            "face_identity_threshold": settings.face_identity_threshold,
            "face_identity_min_px": settings.face_identity_min_px,
            "face_identity_reuse_iou": settings.face_identity_reuse_iou,
            "sample_fps": settings.sample_fps,
            "jpeg_quality": settings.jpeg_quality,
            "batch_size": settings.model_batch_size,
            "write_workers": settings.write_workers,
            "max_pixels": settings.max_video_pixels,
            "max_duration_s": settings.max_video_duration_s,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class _Timings:
    decode: float = 0.0
    model_stage_wait: float = 0.0
    scenes: float = 0.0
    models: float = 0.0
    identities: float = 0.0
    write: float = 0.0
    drain: float = 0.0

    def to_json(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.__dict__.items()}


@dataclass
class _Writer:
    """Draws, encodes and uploads sampled frames in a pool, a bounded number in flight."""

    store: ObjectStore
    job_id: str
    quality: int
    toon: TextEncoder | None
    workers: int
    timings: _Timings
    _pool: ThreadPoolExecutor = field(init=False)
    _inflight: deque[Future] = field(init=False, default_factory=deque)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vidwatch-write")

    def submit(self, frame: Frame, found: Detections, doc: dict[str, Any]) -> None:
        while len(self._inflight) >= 2 * self.workers:
            self._inflight.popleft().result()  # back-pressure; raises a worker's error here
        # The job's log context (job_id, stage) travels with the work into the pool.
        context = contextvars.copy_context()
        self._inflight.append(self._pool.submit(context.run, self._write, frame, found, doc))

    def _write(self, frame: Frame, found: Detections, doc: dict[str, Any]) -> None:
        started = time.perf_counter()
        n, img = frame.index, frame.image
        original = draw.encode_jpeg(img, self.quality)
        # An annotated image with nothing to draw is the original: its bytes serve again.
        drawn = {
            "det": draw.draw_det(img, found) if found.objects else None,
            "seg": draw.draw_seg(img, found) if found.segments else None,
            "face": draw.draw_faces(img, found) if found.faces else None,
        }
        items = [PutItem(keys.frame_image_key(self.job_id, "original", n), original, "image/jpeg")]
        items += [
            PutItem(
                keys.frame_image_key(self.job_id, kind, n),
                original if image is None else draw.encode_jpeg(image, self.quality),
                "image/jpeg",
            )
            for kind, image in drawn.items()
        ]
        items.append(
            PutItem(
                keys.frame_json_key(self.job_id, n),
                json.dumps(doc, ensure_ascii=False).encode(),
                "application/json",
            )
        )
        if self.toon is not None:
            items.append(
                PutItem(
                    keys.frame_toon_key(self.job_id, n),
                    self.toon.encode(doc).encode(),
                    "text/plain; charset=utf-8",
                )
            )
        self.store.put_many(items)
        with self._lock:
            self.timings.write += time.perf_counter() - started

    def finish(self) -> None:
        try:
            while self._inflight:
                self._inflight.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


class _Sampler:
    """Sees every frame in order: feeds the scene tracker, holds frames in a delay line
    until every cut that could fall on them is known, and picks the sampled ones (every
    ``period`` seconds of presentation time, and the first frame of each scene)."""

    def __init__(self, tracker, period: float) -> None:
        self.tracker = tracker
        self.period = period
        self.cuts: list[int] = []
        self.cut_times: dict[int, float] = {}
        self.pending: deque[Frame] = deque()
        self.next_tick: float | None = None
        self.last: Frame | None = None
        self.scene_s = 0.0

    def _add_cuts(self, found: list[int]) -> None:
        for c in found:
            if c > 0 and c not in self.cut_times:
                bisect.insort(self.cuts, c)
                self.cut_times[c] = float("nan")

    def push(self, frame: Frame) -> Iterator[tuple[Frame, int]]:
        started = time.perf_counter()
        self._add_cuts(self.tracker.push(frame.index, frame.image))
        self.scene_s += time.perf_counter() - started
        self.pending.append(frame)
        self.last = frame
        while len(self.pending) > self.tracker.delay_frames:
            yield from self._release(self.pending.popleft())

    def finish(self) -> Iterator[tuple[Frame, int]]:
        if self.last is not None:
            self._add_cuts(self.tracker.finish(self.last.index))
        while self.pending:
            yield from self._release(self.pending.popleft())

    def _release(self, frame: Frame) -> Iterator[tuple[Frame, int]]:
        if frame.index in self.cut_times:
            self.cut_times[frame.index] = frame.time_s
        starts_scene = frame.index == 0 or frame.index in self.cut_times
        tick = self.next_tick is None or frame.time_s >= self.next_tick - 1e-6
        if tick:
            base = frame.time_s if self.next_tick is None else self.next_tick
            self.next_tick = base + self.period
            while self.next_tick <= frame.time_s + 1e-6:
                self.next_tick += self.period
        if starts_scene or tick:
            yield frame, bisect.bisect_right(self.cuts, frame.index)


def analyze(
    source: Path,
    *,
    job_id: str,
    store: ObjectStore,
    models: ModelSet,
    options: AnalysisOptions,
    toon: TextEncoder | None,
    source_sha256: str | None = None,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    on_probe: Callable[[VideoInfo], None] | None = None,
) -> dict[str, Any]:
    """Analyse ``source`` and write every artifact of ``job_id``; returns results.json.

    Three stages overlap: decoding (its own thread), scenes and sampling (the frame stage,
    its own thread, running ahead of the models by a bounded number of sampled frames),
    and the models in this thread; drawing, encoding and uploads run in the writer pool.
    """
    info = probe(source, max_pixels=options.max_pixels, max_duration_s=options.max_duration_s)
    if on_probe is not None:
        on_probe(info)
    timings = _Timings()
    sampler = _Sampler(models.scene_tracker(info.fps), 1.0 / options.sample_fps)
    writer = _Writer(store, job_id, options.jpeg_quality, toon, options.write_workers, timings)
    frames_out: list[dict[str, Any]] = []
    tracker = None
    if options.face_identities and models.describer is not None:
        tracker = IdentityTracker(
            models.describer,
            threshold=options.face_identity_threshold,
            min_px=options.face_identity_min_px,
            reuse_iou=options.face_identity_reuse_iou,
        )
    counts = {"decoded": 0}
    clock: dict[str, float] = {}

    def frame_stage() -> Iterator[tuple[Frame, int]]:
        for frame in decode(source, stop=stop, clock=clock):
            counts["decoded"] += 1
            yield from sampler.push(frame)
            if progress is not None:
                progress(counts["decoded"], info.frames_expected)
        if stop is not None and stop.is_set():
            return
        yield from sampler.finish()

    def run_batch(batch: list[tuple[Frame, int]]) -> None:
        started = time.perf_counter()
        images = [f.image for f, _ in batch]
        found = [Detections() for _ in batch]
        for detector in models.detectors:
            for i, extra in enumerate(detector.detect(images)):
                found[i] = found[i].merge(extra)
        timings.models += time.perf_counter() - started
        if tracker is not None:
            # In frame order, after the models: a face's person is final when assigned.
            found = [
                Detections(d.objects, d.segments, tracker.assign(frame.image, scene, d.faces))
                for (frame, scene), d in zip(batch, found, strict=True)
            ]
        for (frame, scene), dets in zip(batch, found, strict=True):
            doc = _frame_doc(job_id, frame, scene, dets, toon is not None)
            frames_out.append(doc)
            writer.submit(frame, dets, {"schema_version": SCHEMA_VERSION, "job_id": job_id, **doc})

    started_all = time.perf_counter()
    try:
        batch: list[tuple[Frame, int]] = []
        wait_started = time.perf_counter()
        for item in threaded(frame_stage, maxsize=2 * options.batch_size, name="vidwatch-frames"):
            timings.model_stage_wait += time.perf_counter() - wait_started
            if stop is not None and stop.is_set():
                break  # frames already queued are not worth a model call each
            batch.append(item)
            if len(batch) >= options.batch_size:
                run_batch(batch)
                batch = []
            wait_started = time.perf_counter()
        if stop is not None and stop.is_set():
            raise JobInterrupted(job_id)
        if sampler.last is None:
            raise VideoError("the video stream holds no decodable frame", code="undecodable")
        if batch:
            run_batch(batch)
        thumbnails = _write_thumbnails(store, job_id, tracker, options.jpeg_quality)
        drain_started = time.perf_counter()
        writer.finish()
        timings.drain = time.perf_counter() - drain_started
    except BaseException:
        # The first error is the one that matters; the writer's own is dropped.
        with contextlib.suppress(Exception):
            writer.finish()
        raise
    timings.scenes = sampler.scene_s
    if tracker is not None:
        timings.identities = tracker.seconds
    timings.decode = clock.get("decode", 0.0)
    wall = time.perf_counter() - started_all

    last = sampler.last
    cuts, cut_times = sampler.cuts, sampler.cut_times
    frames_out.sort(key=lambda d: d["frame"])
    fps = info.fps or 25.0
    end_s = last.time_s + 1.0 / fps
    starts = [0, *cuts]
    scenes = []
    for i, start in enumerate(starts):
        stop_frame = starts[i + 1] if i + 1 < len(starts) else last.index + 1
        start_s = frames_out[0]["time_s"] if start == 0 else cut_times[start]
        stop_s = cut_times[starts[i + 1]] if i + 1 < len(starts) else end_s
        scenes.append(
            {
                "index": i,
                "start_frame": start,
                "end_frame": stop_frame,
                "start_s": round(start_s, 4),
                "end_s": round(stop_s, 4),
                "keyframe": start,
            }
        )
    for scene, cast in zip(scenes, timeline.scene_people(frames_out, len(scenes)), strict=True):
        scene["people"] = cast
    people = timeline.people(frames_out, thumbnails)
    summary = _summary(frames_out)
    summary["people"] = len(people)
    frames_total = last.index + 1
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": job_id,
        "video": info.to_json(frames=frames_total),
        "scenes": scenes,
        "frames": frames_out,
        "people": people,
        "label_segments": timeline.label_segments(frames_out, scenes),
        "summary": summary,
        "provenance": {
            "vidwatch_version": __version__,
            "source_sha256": source_sha256,
            "models": {
                role: i.to_json()
                for role, i in models.infos.items()
                if role != "identities" or tracker is not None
            },
            "settings": {
                "sample_fps": options.sample_fps,
                "object_min_confidence": models.settings.object_min_confidence,
                "face_min_confidence": models.settings.face_min_confidence,
                "scene_detector": sampler.tracker.name,
                "scene_threshold": models.settings.scene_threshold,
                "scene_min_len_frames": models.settings.scene_min_len_frames,
                "face_identities": tracker is not None,
                "face_identity_threshold": options.face_identity_threshold,
                "face_identity_min_px": options.face_identity_min_px,
                "face_identity_reuse_iou": options.face_identity_reuse_iou,
            },
            "device": models.device,
            "toon": {
                "enabled": toon is not None,
                "library": f"@toon-format/toon {toon.version}" if toon is not None else None,
            },
        },
        "timings_s": {**timings.to_json(), "wall": round(wall, 3)},
        "stats": {
            "frames_decoded": counts["decoded"],
            "decodes_per_frame": round(counts["decoded"] / frames_total, 3),
            "frames_analyzed": len(frames_out),
            "face_descriptors": tracker.descriptors if tracker is not None else 0,
            "faces_reused": tracker.reused if tracker is not None else 0,
        },
    }


def _write_thumbnails(
    store: ObjectStore, job_id: str, tracker: IdentityTracker | None, quality: int
) -> dict[int, str | None]:
    """Each person's best face crop, ``jobs/<job_id>/people/person_<k>.jpg``; by person."""
    if tracker is None:
        return {}
    items = [
        PutItem(keys.person_thumbnail_key(job_id, k), draw.encode_jpeg(crop, quality), "image/jpeg")
        for k, crop in tracker.thumbnails()
    ]
    if items:
        store.put_many(items)
    return {k: keys.person_thumbnail_key(job_id, k) for k, _ in tracker.thumbnails()}


def _frame_doc(
    job_id: str, frame: Frame, scene: int, found: Detections, toon: bool
) -> dict[str, Any]:
    n = frame.index
    return {
        "frame": n,
        "time_s": round(frame.time_s, 4),
        "scene": scene,
        "objects": [o.to_json() for o in found.objects],
        "segments": [s.to_json() for s in found.segments],
        "faces": [f.to_json() for f in found.faces],
        "images": {kind: keys.frame_image_key(job_id, kind, n) for kind in keys.IMAGE_KINDS},
        "json": keys.frame_json_key(job_id, n),
        "toon": keys.frame_toon_key(job_id, n) if toon else None,
    }


def _summary(frames: list[dict[str, Any]]) -> dict[str, Any]:
    labels: dict[str, dict[str, Any]] = {}
    face_frames, max_faces = 0, 0
    for doc in frames:
        seen = {o["label"] for o in doc["objects"]} | {s["label"] for s in doc["segments"]}
        for label in seen:
            entry = labels.setdefault(
                label, {"frames": 0, "first_s": doc["time_s"], "last_s": doc["time_s"]}
            )
            entry["frames"] += 1
            entry["last_s"] = doc["time_s"]
        if doc["faces"]:
            face_frames += 1
            max_faces = max(max_faces, len(doc["faces"]))
    return {
        "labels": dict(sorted(labels.items())),
        "faces": {"frames": face_frames, "max_in_frame": max_faces},
        "frames_analyzed": len(frames),
    }
