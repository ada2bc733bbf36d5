"""The analysis of one video: decode once, in order; every frame feeds the scene tracker;
sampled frames (every 1/SAMPLE_FPS seconds and the first frame of each scene) go to the
models in batches; their images and documents are written by a pool that overlaps the next
frames' work. Nothing holds all frames: memory stays flat however long the video is.

The stages, in the order ``analyze`` runs them: ``probe``; ``_detect_and_write`` (decode,
scenes and sampling in a thread of their own, the models here, the writer pool behind);
then ``_results`` assembles results.json from the frame entries (``_scenes``, ``_summary``,
``_provenance``). The documents' types are in ``vidwatch.pipeline.documents``.
"""

from __future__ import annotations

import bisect
import contextvars
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, get_args, get_origin

import numpy as np
import structlog

from vidwatch import __version__
from vidwatch.config.settings import result_settings
from vidwatch.detectors.registry import ModelSet
from vidwatch.detectors.scenes import SceneTracker
from vidwatch.detectors.types import Detections
from vidwatch.errors import JobInterrupted, VideoError
from vidwatch.pipeline import draw, timeline
from vidwatch.pipeline.documents import (
    SCHEMA_VERSION,
    Document,
    FaceSummary,
    FrameDocument,
    FrameEntry,
    FrameImages,
    LabelSummary,
    Provenance,
    ProvenanceModels,
    ProvenanceSettings,
    Results,
    SceneEntry,
    Stats,
    Summary,
    Timings,
    ToonProvenance,
    VideoEntry,
)
from vidwatch.pipeline.identities import IdentityTracker
from vidwatch.pipeline.stages import threaded
from vidwatch.pipeline.video import Frame, VideoInfo, decode, probe
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore, PutItem

if TYPE_CHECKING:
    from vidwatch.config import Settings

log = structlog.get_logger("vidwatch.pipeline")

__all__ = ["SCHEMA_VERSION", "AnalysisContext", "AnalysisOptions", "TextEncoder", "analyze"]

ProgressFn = Callable[[int, int | None], None]


class TextEncoder(Protocol):
    """Turns a frame document into TOON (the Node bridge, or a stand-in where TOON is off)."""

    @property
    def version(self) -> str: ...

    def encode(self, doc: Any) -> str: ...


@dataclass(frozen=True)
class AnalysisOptions:
    """How to analyse: the numbers the settings give."""

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
    def from_settings(cls, settings: Settings, **overrides: Any) -> AnalysisOptions:
        values: dict[str, Any] = {
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


@dataclass(frozen=True)
class AnalysisContext:
    """What one analysis works for: the job, where its artifacts go, the loaded models,
    and the caller's hooks (progress, a stop flag, the probed video)."""

    job_id: str
    store: ObjectStore
    models: ModelSet
    toon: TextEncoder | None = None
    source_sha256: str | None = None
    progress: ProgressFn | None = None
    """Called with (frames decoded, frames expected) after every decoded frame."""
    stop: threading.Event | None = None
    """Set by the owner to interrupt: ``analyze`` then raises JobInterrupted."""
    on_probe: Callable[[VideoInfo], None] | None = None
    on_people: Callable[[dict[int, np.ndarray]], None] | None = None
    """Given each person's descriptors (``person -> n x 128``) at the end, for the people
    library; they are written into none of the job's files."""

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def analyze(source: Path, ctx: AnalysisContext, options: AnalysisOptions) -> Results:
    """Analyse ``source`` and write every artifact of ``ctx.job_id``; returns results.json.

    Three stages overlap: decoding (its own thread), scenes and sampling (the frame stage,
    its own thread, running ahead of the models by a bounded number of sampled frames),
    and the models in this thread; drawing, encoding and uploads run in the writer pool.
    """
    info = probe(source, max_pixels=options.max_pixels, max_duration_s=options.max_duration_s)
    if ctx.on_probe is not None:
        ctx.on_probe(info)
    started = time.perf_counter()
    timings = _Timings()
    sampler = _Sampler(ctx.models.scene_tracker(info.fps), 1.0 / options.sample_fps)
    people = _identity_tracker(ctx.models, options)
    frames = _detect_and_write(source, info, ctx, options, sampler, people, timings)
    thumbnails = _write_thumbnails(ctx.store, ctx.job_id, people, options.jpeg_quality)
    if people is not None and ctx.on_people is not None:
        ctx.on_people(people.exemplars())
    timings.wall = time.perf_counter() - started
    return _results(ctx, options, info, sampler, people, frames, thumbnails, timings)


def _identity_tracker(models: ModelSet, options: AnalysisOptions) -> IdentityTracker | None:
    """Who is who across the job's faces, where identities are on and a describer loaded."""
    if not options.face_identities or models.describer is None:
        return None
    return IdentityTracker(
        models.describer,
        threshold=options.face_identity_threshold,
        min_px=options.face_identity_min_px,
        reuse_iou=options.face_identity_reuse_iou,
    )


# --- stage: decode, scenes, sampling, models, writer ----------------------------------------
def _detect_and_write(  # noqa: C901 - the per-frame stages share its clock and stop
    source: Path,
    info: VideoInfo,
    ctx: AnalysisContext,
    options: AnalysisOptions,
    sampler: _Sampler,
    people: IdentityTracker | None,
    timings: _Timings,
) -> list[FrameEntry]:
    """Run every sampled frame through the models and hand it to the writer; the frame
    entries of results.json, in the order the frames were sampled."""
    clock: dict[str, float] = {}

    def converted(items: Iterator[tuple[Frame, int]]) -> Iterator[tuple[Frame, int]]:
        """A sampled frame's BGR image is built here, in the frame stage's thread (the
        models, identities and writer read it); the other frames never need it. Its time
        counts as decoding."""
        for frame, scene in items:
            started = time.perf_counter()
            _ = frame.image
            clock["decode"] += time.perf_counter() - started
            yield frame, scene

    def frame_stage() -> Iterator[tuple[Frame, int]]:
        for frame in decode(source, stop=ctx.stop, clock=clock):
            yield from converted(sampler.push(frame))
            if ctx.progress is not None:
                ctx.progress(sampler.seen, info.frames_expected)
        if not ctx.stopped():
            yield from converted(sampler.finish())

    writer = _Writer(ctx.store, ctx.job_id, options.jpeg_quality, ctx.toon, options, timings)
    lanes = _Lanes(ctx.models, timings)
    entries: list[FrameEntry] = []

    def settle(batch: list[tuple[Frame, int]], found_all: list[Detections]) -> None:
        if people is not None:
            # In frame order, after the models: a face's person is final when assigned.
            found_all = [
                d.replace(faces=people.assign(frame.image, scene, d.faces))
                for (frame, scene), d in zip(batch, found_all, strict=True)
            ]
        for (frame, scene), found in zip(batch, found_all, strict=True):
            entry = frame_entry(ctx.job_id, frame, scene, found, toon=ctx.toon is not None)
            entries.append(entry)
            writer.submit(frame, found, entry)

    try:
        batch: list[tuple[Frame, int]] = []
        wait_started = time.perf_counter()
        for item in threaded(frame_stage, maxsize=2 * options.batch_size, name="vidwatch-frames"):
            timings.model_stage_wait += time.perf_counter() - wait_started
            if ctx.stopped():
                break  # the frames already sampled are not worth the models' time
            batch.append(item)
            if len(batch) >= options.batch_size:
                lanes.submit(batch)
                batch = []
                for done in lanes.ready():
                    settle(*done)
            wait_started = time.perf_counter()
        if ctx.stopped():
            raise JobInterrupted(ctx.job_id)
        if sampler.last is None:
            raise VideoError("the video stream holds no decodable frame", code="undecodable")
        if batch:
            lanes.submit(batch)
        for done in lanes.rest():
            settle(*done)
        drain_started = time.perf_counter()
        writer.finish()
        timings.drain = time.perf_counter() - drain_started
    except BaseException:
        lanes.abort()
        writer.abort()  # the first error is the one raised; the writer's are logged
        raise
    lanes.close()
    timings.scenes = sampler.scene_s
    timings.decode = clock.get("decode", 0.0)
    if people is not None:
        timings.identities = people.seconds
    return entries


def _write_thumbnails(
    store: ObjectStore, job_id: str, people: IdentityTracker | None, quality: int
) -> dict[int, str | None]:
    """Each person's best face crop, ``jobs/<job_id>/people/person_<k>.jpg``; by person."""
    if people is None:
        return {}
    items = [
        PutItem(keys.person_thumbnail_key(job_id, k), draw.encode_jpeg(crop, quality), "image/jpeg")
        for k, crop in people.thumbnails()
    ]
    if items:
        store.put_many(items)
    return {k: keys.person_thumbnail_key(job_id, k) for k, _ in people.thumbnails()}


class _Lanes:
    """The model stage: batches of sampled frames go to the model lanes (``ModelSet``), as
    many at once as there are lanes, and come back in the order they were submitted, so
    identities and frame entries are settled in frame order whatever lane finishes first."""

    def __init__(self, models: ModelSet, timings: _Timings) -> None:
        self._models = models
        self._timings = timings
        self._lock = threading.Lock()
        self._width = len(models.lanes)
        self._pool = ThreadPoolExecutor(self._width, thread_name_prefix="vidwatch-models")
        self._pending: deque[tuple[list[tuple[Frame, int]], Future[list[Detections]]]] = deque()

    def submit(self, batch: list[tuple[Frame, int]]) -> None:
        context = contextvars.copy_context()
        future = self._pool.submit(context.run, self._detect, [f.image for f, _ in batch])
        self._pending.append((batch, future))

    def ready(self) -> Iterator[tuple[list[tuple[Frame, int]], list[Detections]]]:
        """The finished batches at the head; waits while every lane is taken (one batch
        more than the lanes stays queued, so a lane never waits for this thread)."""
        while self._pending and (len(self._pending) > self._width or self._pending[0][1].done()):
            batch, future = self._pending.popleft()
            yield batch, future.result()

    def rest(self) -> Iterator[tuple[list[tuple[Frame, int]], list[Detections]]]:
        while self._pending:
            batch, future = self._pending.popleft()
            yield batch, future.result()

    def abort(self) -> None:
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _detect(self, images: list[Any]) -> list[Detections]:
        started = time.perf_counter()
        try:
            return self._models.detect(images)
        finally:
            with self._lock:
                self._timings.models += time.perf_counter() - started


def _entry_types() -> dict[str, type[Document]]:
    """The detection lists the frame documents declare, and each one's entry type:
    every ``list[<Document>]`` field of FrameEntry (objects, segments, faces)."""
    out: dict[str, type[Document]] = {}
    for name, info in FrameEntry.model_fields.items():
        args = get_args(info.annotation)
        if get_origin(info.annotation) is list and args and issubclass(args[0], Document):
            out[name] = args[0]
    return out


ENTRY_TYPES = _entry_types()
"""List name -> the entry type its detections are written as."""
_NOT_LISTS = {
    key
    for name, info in FrameDocument.model_fields.items()
    if name not in ENTRY_TYPES
    for key in (name, info.alias)
    if key
}
"""The frame document's other keys, which no detection list may take."""


def frame_entry(
    job_id: str, frame: Frame, scene: int, found: Detections, *, toon: bool
) -> FrameEntry:
    """A sampled frame's entry in results.json (its document adds the header).

    A list FrameEntry declares is written as its entry type, from the detections'
    attributes of the same names; any other list a registered detector filled is written
    as its detections' ``to_json()``, after the declared fields (the schemas allow fields
    they do not describe)."""
    n = frame.index
    lists: dict[str, Any] = {}
    for name, items in found.lists.items():
        entry_type = ENTRY_TYPES.get(name)
        if entry_type is None:
            if name in _NOT_LISTS:
                raise ValueError(f"a detection list may not be called {name!r}")
            lists[name] = [d.to_json() for d in items]
        else:
            lists[name] = [entry_type.model_validate(d, from_attributes=True) for d in items]
    return FrameEntry(
        frame=n,
        time_s=round(frame.time_s, 4),
        scene=scene,
        images=FrameImages(
            **{kind: keys.frame_image_key(job_id, kind, n) for kind in keys.IMAGE_KINDS}
        ),
        json_key=keys.frame_json_key(job_id, n),
        toon=keys.frame_toon_key(job_id, n) if toon else None,
        **lists,
    )


# --- stage: results.json --------------------------------------------------------------------
def _results(
    ctx: AnalysisContext,
    options: AnalysisOptions,
    info: VideoInfo,
    sampler: _Sampler,
    people: IdentityTracker | None,
    entries: list[FrameEntry],
    thumbnails: dict[int, str | None],
    timings: _Timings,
) -> Results:
    assert sampler.last is not None  # _detect_and_write raised otherwise
    frames = sorted(entries, key=lambda e: e.frame)
    frames_total = sampler.last.index + 1
    scenes = _scenes(sampler, frames, info)
    for scene, cast in zip(scenes, timeline.scene_people(frames, len(scenes)), strict=True):
        scene.people = cast
    persons = timeline.people(frames, thumbnails)
    summary = _summary(frames)
    summary.people = len(persons)
    return Results(
        job_id=ctx.job_id,
        video=VideoEntry.model_validate(info.to_json(frames=frames_total)),
        scenes=scenes,
        frames=frames,
        people=persons,
        label_segments=timeline.label_segments(frames, scenes),
        summary=summary,
        provenance=_provenance(ctx, options, sampler.tracker.name, people),
        timings_s=timings.to_model(),
        stats=Stats(
            frames_decoded=sampler.seen,
            decodes_per_frame=round(sampler.seen / frames_total, 3),
            frames_analyzed=len(frames),
            face_descriptors=people.descriptors if people is not None else 0,
            faces_reused=people.reused if people is not None else 0,
        ),
    )


def _scenes(sampler: _Sampler, frames: list[FrameEntry], info: VideoInfo) -> list[SceneEntry]:
    """Scenes from the cuts: half-open frame ranges, times from the frames' timestamps."""
    assert sampler.last is not None
    last, cut_times = sampler.last, sampler.cut_times
    end_s = last.time_s + 1.0 / (info.fps or 25.0)
    starts = [0, *sampler.cuts]
    scenes = []
    for i, start in enumerate(starts):
        following = starts[i + 1] if i + 1 < len(starts) else None
        start_s = frames[0].time_s if start == 0 else cut_times[start]
        scenes.append(
            SceneEntry(
                index=i,
                start_frame=start,
                end_frame=last.index + 1 if following is None else following,
                start_s=round(start_s, 4),
                end_s=round(end_s if following is None else cut_times[following], 4),
                keyframe=start,
                people=[],
            )
        )
    return scenes


def _summary(frames: list[FrameEntry]) -> Summary:
    labels: dict[str, LabelSummary] = {}
    face_frames, max_faces = 0, 0
    for entry in frames:
        seen = {o.label for o in entry.objects} | {s.label for s in entry.segments}
        for label in seen:
            summary = labels.setdefault(
                label, LabelSummary(frames=0, first_s=entry.time_s, last_s=entry.time_s)
            )
            summary.frames += 1
            summary.last_s = entry.time_s
        if entry.faces:
            face_frames += 1
            max_faces = max(max_faces, len(entry.faces))
    return Summary(
        labels=dict(sorted(labels.items())),
        faces=FaceSummary(frames=face_frames, max_in_frame=max_faces),
        frames_analyzed=len(frames),
        people=0,
    )


def _provenance_models(
    ctx: AnalysisContext, options: AnalysisOptions, people: IdentityTracker | None
) -> ProvenanceModels:
    """Every role, whatever the settings: a model that did not run for this job has an
    entry named ``none`` that says why (catalogue.off_info)."""
    from vidwatch.detectors.catalogue import off_info

    infos = dict(ctx.models.infos)
    if people is None:
        why = (
            "FACES_ENABLED=false: no faces to tell apart"
            if not ctx.models.settings.faces_enabled
            else "FACE_IDENTITIES=false: turned off by the operator"
            if not options.face_identities
            else "no face describer loaded"
        )
        infos["identities"] = off_info("identities", f"{why}; people is empty")
    return ProvenanceModels.model_validate({role: i.to_json() for role, i in infos.items()})


def _provenance(
    ctx: AnalysisContext,
    options: AnalysisOptions,
    scene_detector: str,
    people: IdentityTracker | None,
) -> Provenance:
    settings = ctx.models.settings
    return Provenance(
        vidwatch_version=__version__,
        source_sha256=ctx.source_sha256,
        models=_provenance_models(ctx, options, people),
        # The declared result-changing settings (as the content key reads them), with
        # the values this analysis really used where options or the models decide.
        settings=ProvenanceSettings.model_validate(
            {
                **result_settings(settings),
                "sample_fps": options.sample_fps,
                "jpeg_quality": options.jpeg_quality,
                "face_identities": people is not None,
                "face_identity_threshold": options.face_identity_threshold,
                "face_identity_min_px": options.face_identity_min_px,
                "face_identity_reuse_iou": options.face_identity_reuse_iou,
                "toon_enabled": ctx.toon is not None,
                "scene_detector": scene_detector,
            }
        ),
        device=ctx.models.device,
        toon=ToonProvenance(
            enabled=ctx.toon is not None,
            library=f"@toon-format/toon {ctx.toon.version}" if ctx.toon is not None else None,
        ),
    )


# --- the parts ------------------------------------------------------------------------------
@dataclass
class _Timings:
    decode: float = 0.0
    model_stage_wait: float = 0.0
    scenes: float = 0.0
    models: float = 0.0
    identities: float = 0.0
    write: float = 0.0
    drain: float = 0.0
    wall: float = 0.0

    def to_model(self) -> Timings:
        return Timings(**{k: round(v, 3) for k, v in self.__dict__.items()})


@dataclass
class _Writer:
    """Draws, encodes and uploads sampled frames in a pool, a bounded number in flight.

    A failed write is logged (``frame_write_failed``, with the frame) and raised in the
    owner at its next ``submit`` or at ``finish``; ``abort`` (the owner is raising an error
    of its own) cancels what has not started and logs the failures of the rest."""

    store: ObjectStore
    job_id: str
    quality: int
    toon: TextEncoder | None
    options: AnalysisOptions
    timings: _Timings
    _pool: ThreadPoolExecutor = field(init=False)
    _inflight: deque[tuple[int, Future[None]]] = field(init=False, default_factory=deque)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            self.options.write_workers, thread_name_prefix="vidwatch-write"
        )

    def submit(self, frame: Frame, found: Detections, entry: FrameEntry) -> None:
        limit = 2 * self.options.write_workers
        while self._inflight and (len(self._inflight) >= limit or self._inflight[0][1].done()):
            error = self._settle(*self._inflight.popleft())  # back-pressure
            if error is not None:
                raise error
        doc = FrameDocument.of(self.job_id, entry).to_json()
        # The job's log context (job_id, stage) travels with the work into the pool.
        context = contextvars.copy_context()
        future = self._pool.submit(context.run, self._write, frame, found, doc)
        self._inflight.append((frame.index, future))

    def finish(self) -> None:
        """Wait for every write; raise the first failure (every one is logged)."""
        first: BaseException | None = None
        try:
            while self._inflight:
                n, future = self._inflight.popleft()
                if first is not None:
                    future.cancel()
                error = self._settle(n, future)
                first = first or error
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if first is not None:
            raise first

    def abort(self) -> None:
        """Cancel the writes not started, wait for the running ones, log their failures."""
        for _, future in self._inflight:
            future.cancel()
        while self._inflight:
            self._settle(*self._inflight.popleft())
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _settle(self, frame: int, future: Future[None]) -> BaseException | None:
        try:
            future.result()
        except CancelledError:
            return None
        except Exception as exc:  # noqa: BLE001 - logged here, raised by the caller
            log.error(
                "frame_write_failed",
                frame=frame,
                error=f"{type(exc).__name__}: {exc}",
                code=getattr(exc, "code", None),
            )
            return exc
        return None

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


class _Sampler:
    """Sees every frame in order: feeds the scene tracker, holds frames in a delay line
    until every cut that could fall on them is known, and picks the sampled ones (every
    ``period`` seconds of presentation time, and the first frame of each scene)."""

    def __init__(self, tracker: SceneTracker, period: float) -> None:
        self.tracker = tracker
        self.period = period
        self.cuts: list[int] = []
        self.cut_times: dict[int, float] = {}
        self.pending: deque[Frame] = deque()
        self.next_tick: float | None = None
        self.last: Frame | None = None
        self.seen = 0
        """Frames decoded so far."""
        self.scene_s = 0.0

    def _add_cuts(self, found: list[int]) -> None:
        for c in found:
            if c > 0 and c not in self.cut_times:
                bisect.insort(self.cuts, c)
                self.cut_times[c] = float("nan")

    def push(self, frame: Frame) -> Iterator[tuple[Frame, int]]:
        self.seen += 1
        started = time.perf_counter()
        # The frame itself, not its image: the tracker shrinks it without the full-size
        # colour conversion that only sampled frames need.
        self._add_cuts(self.tracker.push(frame.index, frame))
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
