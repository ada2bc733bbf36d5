"""The analysis of one video: decode once, in order; every frame feeds the scene tracker;
sampled frames (every 1/SAMPLE_FPS seconds and the first frame of each scene) go to the
models in batches; their images and documents are written by a pool that overlaps the next
frames' work. Nothing holds all frames: memory stays flat however long the video is.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from vidwatch import __version__
from vidwatch.daemon import draw
from vidwatch.daemon.errors import JobInterrupted, VideoError
from vidwatch.daemon.video import Frame, VideoInfo, decode, probe
from vidwatch.detectors.registry import ModelSet
from vidwatch.detectors.types import Detections
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore, PutItem

log = structlog.get_logger("vidwatch.pipeline")

SCHEMA_VERSION = 1
ProgressFn = Callable[[int, int | None], None]


class TextEncoder(Protocol):
    """Turns a frame document into TOON (the Node bridge, or a stand-in where TOON is off)."""

    def encode(self, doc: Any) -> str: ...


@dataclass(frozen=True)
class AnalysisOptions:
    sample_fps: float
    jpeg_quality: int = 85
    batch_size: int = 4
    write_workers: int = 4
    max_pixels: int = 8192 * 8192
    max_duration_s: float = 6 * 3600

    @classmethod
    def from_settings(cls, settings, **overrides) -> AnalysisOptions:
        values = {
            "sample_fps": settings.sample_fps, "jpeg_quality": settings.jpeg_quality,
            "batch_size": settings.model_batch_size, "write_workers": settings.write_workers,
            "max_pixels": settings.max_video_pixels,
            "max_duration_s": settings.max_video_duration_s,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class _Timings:
    decode: float = 0.0
    scenes: float = 0.0
    models: float = 0.0
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
        self._inflight.append(self._pool.submit(self._write, frame, found, doc))

    def _write(self, frame: Frame, found: Detections, doc: dict[str, Any]) -> None:
        started = time.perf_counter()
        n, img = frame.index, frame.image
        images = {"original": img, "det": draw.draw_det(img, found),
                  "seg": draw.draw_seg(img, found), "face": draw.draw_faces(img, found)}
        items = [PutItem(keys.frame_image_key(self.job_id, kind, n),
                         draw.encode_jpeg(image, self.quality), "image/jpeg")
                 for kind, image in images.items()]
        items.append(PutItem(keys.frame_json_key(self.job_id, n),
                             json.dumps(doc, ensure_ascii=False).encode(), "application/json"))
        if self.toon is not None:
            items.append(PutItem(keys.frame_toon_key(self.job_id, n),
                                 self.toon.encode(doc).encode(), "text/plain; charset=utf-8"))
        self.store.put_many(items)
        with self._lock:
            self.timings.write += time.perf_counter() - started

    def finish(self) -> None:
        try:
            while self._inflight:
                self._inflight.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


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
    """Analyse ``source`` and write every artifact of ``job_id``; returns results.json."""
    info = probe(source, max_pixels=options.max_pixels, max_duration_s=options.max_duration_s)
    if on_probe is not None:
        on_probe(info)
    timings = _Timings()
    tracker = models.scene_tracker(info.fps)
    period = 1.0 / options.sample_fps
    writer = _Writer(store, job_id, options.jpeg_quality, toon, options.write_workers, timings)

    cuts: list[int] = []
    cut_times: dict[int, float] = {}
    pending: deque[Frame] = deque()
    batch: list[Frame] = []
    frames_out: list[dict[str, Any]] = []
    next_tick: float | None = None
    last: Frame | None = None
    frames_seen = 0

    def scene_of(index: int) -> int:
        return bisect.bisect_right(cuts, index)

    def run_batch() -> None:
        if not batch:
            return
        started = time.perf_counter()
        images = [f.image for f in batch]
        found = [Detections() for _ in batch]
        for detector in models.detectors:
            for i, extra in enumerate(detector.detect(images)):
                found[i] = found[i].merge(extra)
        timings.models += time.perf_counter() - started
        for frame, dets in zip(batch, found, strict=True):
            doc = _frame_doc(job_id, frame, scene_of(frame.index), dets, toon is not None)
            frames_out.append(doc)
            writer.submit(frame, dets, {"schema_version": SCHEMA_VERSION, "job_id": job_id,
                                        **doc})
        batch.clear()

    def release(frame: Frame) -> None:
        nonlocal next_tick
        if frame.index in cut_times:
            cut_times[frame.index] = frame.time_s
        starts_scene = frame.index == 0 or frame.index in cut_times
        tick = next_tick is None or frame.time_s >= next_tick - 1e-6
        if tick:
            base = frame.time_s if next_tick is None else next_tick
            next_tick = base + period
            while next_tick <= frame.time_s + 1e-6:
                next_tick += period
        if starts_scene or tick:
            batch.append(frame)
            if len(batch) >= options.batch_size:
                run_batch()

    def add_cuts(found: list[int]) -> None:
        for c in found:
            if c > 0 and c not in cut_times:
                bisect.insort(cuts, c)
                cut_times[c] = float("nan")

    try:
        decode_wait = time.perf_counter()
        for frame in decode(source, stop=stop):
            timings.decode += time.perf_counter() - decode_wait
            if stop is not None and stop.is_set():
                raise JobInterrupted(job_id)
            started = time.perf_counter()
            add_cuts(tracker.push(frame.index, frame.image))
            timings.scenes += time.perf_counter() - started
            pending.append(frame)
            while len(pending) > tracker.delay_frames:
                release(pending.popleft())
            last = frame
            frames_seen += 1
            if progress is not None:
                progress(frames_seen, info.frames_expected)
            decode_wait = time.perf_counter()
        if stop is not None and stop.is_set():
            raise JobInterrupted(job_id)
        if last is None:
            raise VideoError("the video stream holds no decodable frame", code="undecodable")
        add_cuts(tracker.finish(last.index))
        while pending:
            release(pending.popleft())
        run_batch()
        drain_started = time.perf_counter()
        writer.finish()
        timings.drain = time.perf_counter() - drain_started
    except BaseException:
        # The first error is the one that matters; the writer's own is dropped.
        with contextlib.suppress(Exception):
            writer.finish()
        raise

    frames_out.sort(key=lambda d: d["frame"])
    fps = info.fps or 25.0
    end_s = last.time_s + 1.0 / fps
    starts = [0, *cuts]
    scenes = []
    for i, start in enumerate(starts):
        stop_frame = starts[i + 1] if i + 1 < len(starts) else last.index + 1
        start_s = 0.0 if start == 0 else cut_times[start]
        stop_s = cut_times[starts[i + 1]] if i + 1 < len(starts) else end_s
        scenes.append({"index": i, "start_frame": start, "end_frame": stop_frame,
                       "start_s": round(start_s, 4), "end_s": round(stop_s, 4),
                       "keyframe": start})
    if frames_out and frames_out[0]["frame"] == 0:
        scenes[0]["start_s"] = frames_out[0]["time_s"]
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": job_id,
        "video": info.to_json(frames=last.index + 1),
        "scenes": scenes,
        "frames": frames_out,
        "summary": _summary(frames_out),
        "provenance": {
            "vidwatch_version": __version__,
            "source_sha256": source_sha256,
            "models": {role: i.to_json() for role, i in models.infos.items()},
            "settings": {
                "sample_fps": options.sample_fps,
                "object_min_confidence": models.settings.object_min_confidence,
                "face_min_confidence": models.settings.face_min_confidence,
                "scene_detector": tracker.name,
                "scene_threshold": models.settings.scene_threshold,
                "scene_min_len_frames": models.settings.scene_min_len_frames,
            },
            "device": models.device,
            "toon": {"enabled": toon is not None,
                     "library": getattr(toon, "library", None) if toon is not None else None},
        },
        "timings_s": timings.to_json(),
    }


def _frame_doc(job_id: str, frame: Frame, scene: int, found: Detections,
               toon: bool) -> dict[str, Any]:
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
            entry = labels.setdefault(label, {"frames": 0, "first_s": doc["time_s"],
                                              "last_s": doc["time_s"]})
            entry["frames"] += 1
            entry["last_s"] = doc["time_s"]
        if doc["faces"]:
            face_frames += 1
            max_faces = max(max_faces, len(doc["faces"]))
    return {"labels": dict(sorted(labels.items())),
            "faces": {"frames": face_frames, "max_in_frame": max_faces},
            "frames_analyzed": len(frames)}
