"""Builds the detectors the settings ask for, loading each model once."""

from __future__ import annotations

import os
import queue
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from vidwatch.config import ConfigError, Settings
from vidwatch.detectors.base import Detector, resolve_device
from vidwatch.detectors.scenes import ContentSceneTracker, SceneTracker
from vidwatch.detectors.types import Detections, ModelInfo

if TYPE_CHECKING:
    import numpy as np

    from vidwatch.detectors.identities import DlibFaceDescriber

log = structlog.get_logger("vidwatch.detectors")


MODEL_OFF = "none"
"""DETECT_MODEL / SEGMENT_MODEL value that turns that model off."""


MODEL_ROLES = ("detect", "segment", "faces")
"""The keys of ``provenance.models`` that are always there (``identities`` is added per job)."""


def model_off(value: str) -> bool:
    return value.strip().lower() == MODEL_OFF


@dataclass
class ModelSet:
    """Everything a job needs from the models, loaded once per process.

    The detectors come in lanes (MODEL_WORKERS): each lane is a full copy of the models,
    used by one caller at a time, so lanes run side by side (on two cores, two frames at
    once) and jobs running at once (JOB_CONCURRENCY) never share a model object."""

    detectors: list[Detector]
    """The first lane (every lane holds the same models)."""
    device: str
    settings: Settings
    describer: DlibFaceDescriber | None = None
    """Face descriptors for identities (None: FACE_IDENTITIES or faces off)."""
    backend: str = "torch"
    more_lanes: list[list[Detector]] = field(default_factory=list)
    threads_per_lane: int | None = None
    """OpenVINO threads of each lane's models (None: the runtime's default)."""
    _free: queue.SimpleQueue[list[Detector]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._free = queue.SimpleQueue()
        for lane in self.lanes:
            self._free.put(lane)

    @property
    def lanes(self) -> list[list[Detector]]:
        return [self.detectors, *self.more_lanes]

    @property
    def busy_every_core(self) -> bool:
        """The models run on the CPU and their lanes take every core (one lane per core, or
        one lane whose runtime spreads over the cores): other stages should spend as little
        CPU as they can rather than add threads (the decoder takes one)."""
        return self.device == "cpu" and bool(self.detectors)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Every detector of a free lane over ``images`` (waiting for a lane if none is
        free); their findings merged per image."""
        lane = self._free.get()
        try:
            found = [Detections() for _ in images]
            for detector in lane:
                for i, extra in enumerate(detector.detect(images)):
                    found[i] = found[i].merge(extra)
            return found
        finally:
            self._free.put(lane)

    @property
    def infos(self) -> dict[str, ModelInfo]:
        models: list[Detector | DlibFaceDescriber] = [*self.detectors]
        if self.describer is not None:
            models.append(self.describer)
        found = {info.role: info for m in models for info in m.infos}
        # A model turned off says so in the provenance instead of vanishing from it: the
        # keys are the same whatever the settings.
        for role in MODEL_ROLES:
            if role not in found:
                found[role] = off_info(role, _off_reason(role))
        return found

    def scene_tracker(self, fps: float) -> SceneTracker:
        return ContentSceneTracker(
            fps=fps,
            threshold=self.settings.scene_threshold,
            min_scene_len=self.settings.scene_min_len_frames,
            downscale_width=self.settings.scene_downscale_width,
        )


def prepare_model_env(settings: Settings) -> None:
    """Keep Ultralytics off the network when downloads are off, its settings file in a
    folder we may write (the home folder is read-only under systemd's ProtectSystem), and
    its banners out of our output (detectors.quiet)."""
    from vidwatch.detectors.quiet import quiet_ultralytics

    quiet_ultralytics()
    if not settings.allow_model_download:
        os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault(
        "YOLO_CONFIG_DIR", str((settings.temp_media_dir / ".ultralytics").resolve())
    )


def load_models(settings: Settings) -> ModelSet:
    """Resolve weights and load every model; ConfigError names the setting at fault."""
    prepare_model_env(settings)
    # Weights first, so a missing file fails before the slow imports.
    detect_path, segment_path = _resolve_weights(settings)
    device = resolve_device(settings.model_device)
    from vidwatch.detectors.backends import lanes_and_threads, openvino_config, resolve_backend

    backend = resolve_backend(settings.model_backend, device)
    if settings.torch_threads and backend == "torch":
        import torch  # on OpenVINO, torch is not imported at all once the models are cached

        torch.set_num_threads(settings.torch_threads)
    cache_dir = settings.model_cache_dir
    lanes, threads = lanes_and_threads(settings.model_workers, backend, device)
    # One lane keeps OpenVINO's own threading (every core, pinned); lanes set their own.
    lane_threads = threads if lanes > 1 else None
    ov_config = openvino_config(cache_dir, lane_threads)

    from vidwatch.detectors.faces import MtcnnFaceDetector
    from vidwatch.detectors.yolo import YoloDetector

    def yolo(path: Path, name: str, roles: tuple[str, ...]) -> YoloDetector:
        return YoloDetector(
            path,
            name=name,
            roles=roles,
            confidence=settings.object_min_confidence,
            device=device,
            backend=backend,
            cache_dir=cache_dir,
            openvino_config=ov_config,
        )

    def lane() -> list[Detector]:
        detectors: list[Detector] = []
        if detect_path is not None and detect_path == segment_path:
            detectors.append(yolo(detect_path, settings.detect_model, ("objects", "segments")))
        else:
            if detect_path is not None:
                detectors.append(yolo(detect_path, settings.detect_model, ("objects",)))
            if segment_path is not None:
                detectors.append(yolo(segment_path, settings.segment_model, ("segments",)))
        if settings.faces_enabled:
            detectors.append(
                MtcnnFaceDetector(
                    min_confidence=settings.face_min_confidence,
                    device=device,
                    backend=backend,
                    cache_dir=cache_dir,
                    openvino_config=ov_config,
                )
            )
        return detectors

    detectors = lane()
    more_lanes = [lane() for _ in range(lanes - 1)]
    describer = None
    if settings.faces_enabled and settings.face_identities:
        from vidwatch.detectors.identities import DlibFaceDescriber

        describer = DlibFaceDescriber()
    log.info(
        "models_loaded",
        device=device,
        backend=backend,
        detect=settings.detect_model,
        segment=settings.segment_model,
        faces=settings.faces_enabled,
        identities=describer is not None,
        lanes=lanes,
        threads_per_lane=lane_threads,
    )
    return ModelSet(
        detectors=detectors,
        device=device,
        settings=settings,
        describer=describer,
        backend=backend,
        more_lanes=more_lanes,
        threads_per_lane=lane_threads,
    )


def _resolve_weights(settings: Settings) -> tuple[Path | None, Path | None]:
    """The weights of DETECT_MODEL and SEGMENT_MODEL (None where off). Both are looked for
    before anything fails, and where both lack weights one ConfigError names both, so one
    start says everything there is to set (by default they name the same file)."""
    from vidwatch.detectors.weights import resolve_yolo_weights

    wanted: dict[str, list[str]] = {}
    for setting, value in (
        ("DETECT_MODEL", settings.detect_model),
        ("SEGMENT_MODEL", settings.segment_model),
    ):
        if not model_off(value):
            wanted.setdefault(value, []).append(setting)
    found: dict[str, Path] = {}
    errors: list[ConfigError] = []
    for value, names in wanted.items():
        try:
            found[value] = resolve_yolo_weights(
                value, tuple(names), allow_download=settings.allow_model_download
            )
        except ConfigError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigError(
            "; and ".join(str(e) for e in errors),
            settings=tuple(n for e in errors for n in e.settings),
        )
    return found.get(settings.detect_model), found.get(settings.segment_model)


def off_info(role: str, reason: str) -> ModelInfo:
    """The provenance of a model that did not run: name ``none``, no hash, and why."""
    return ModelInfo(role, MODEL_OFF, None, {"enabled": False, "reason": reason})


_OFF = {
    "detect": ("DETECT_MODEL=none", "objects"),
    "segment": ("SEGMENT_MODEL=none", "segments"),
    "faces": ("FACES_ENABLED=false", "faces"),
}


def _off_reason(role: str) -> str:
    setting, lists = _OFF[role]
    return f"{setting}: turned off by the operator; the {lists} lists are empty"
