"""Builds the detectors the settings ask for, loading each model once: every lane is built
from the registered detectors (``DETECTORS``, declared in ``catalogue``)."""

from __future__ import annotations

import os
import queue
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from vidwatch.config import ConfigError, Settings
from vidwatch.detectors import kinds
from vidwatch.detectors.base import Detector, resolve_device
from vidwatch.detectors.catalogue import (
    DetectorKind,
    LaneRuntime,
    Registry,
    off_info,
    raise_config_errors,
)
from vidwatch.detectors.scenes import ContentSceneTracker, SceneTracker
from vidwatch.detectors.types import Detections, ModelInfo

if TYPE_CHECKING:
    import numpy as np

    from vidwatch.detectors.identities import DlibFaceDescriber

log = structlog.get_logger("vidwatch.detectors")


DETECTORS = Registry((kinds.YOLO, kinds.FACES))
"""The detectors a lane runs, in order. A new detector is a module that defines its class
and its ``DetectorKind`` (``catalogue``), and one registration: a line here, or
``DETECTORS.register(kind)`` before the models load."""


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
    kinds: tuple[DetectorKind[Any], ...] = field(default_factory=lambda: DETECTORS.kinds)
    """The registered detectors the lanes were built from, on or off: every frame has
    their lists, and the provenance their roles."""
    _free: queue.SimpleQueue[list[Detector]] = field(init=False, repr=False)
    _empty: Detections = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._empty = Detections(**{name: () for kind in self.kinds for name in kind.lists})
        self._free = queue.SimpleQueue()
        for lane in self.lanes:
            self._free.put(lane)

    @property
    def lanes(self) -> list[list[Detector]]:
        return [self.detectors, *self.more_lanes]

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Every detector of a free lane over ``images`` (waiting for a lane if none is
        free); their findings merged per image."""
        lane = self._free.get()
        try:
            found = [self._empty for _ in images]
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
        for kind in self.kinds:
            for role in kind.roles:
                if role.name not in found:
                    found[role.name] = off_info(role.name, role.off_reason())
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


def load_models(settings: Settings, registry: Registry | None = None) -> ModelSet:
    """Check, then load, every detector of ``registry`` (default ``DETECTORS``) the
    settings turn on, in every lane; ConfigError names the setting at fault."""
    registry = DETECTORS if registry is None else registry
    prepare_model_env(settings)
    configs = {kind.name: kind.config(settings) for kind in registry.kinds}
    # What each detector needs first (weights), so a missing file fails before the slow
    # imports; one error names every setting at fault.
    errors: list[ConfigError] = []
    on: list[tuple[DetectorKind[Any], Any]] = []
    for kind in registry.kinds:
        config = configs[kind.name]
        if kind.enabled(config):
            try:
                on.append((kind, config if kind.check is None else kind.check(config)))
            except ConfigError as exc:
                errors.append(exc)
    raise_config_errors(errors)
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
    runtime = LaneRuntime(
        device=device,
        backend=backend,
        cache_dir=cache_dir,
        openvino_config=openvino_config(cache_dir, lane_threads),
    )

    def lane() -> list[Detector]:
        return [detector for kind, config in on for detector in kind.build(config, runtime)]

    detectors = lane()
    more_lanes = [lane() for _ in range(lanes - 1)]
    describer = None
    if settings.faces_enabled and settings.face_identities:
        from vidwatch.detectors.identities import DlibFaceDescriber

        describer = DlibFaceDescriber()
    fields: dict[str, object] = {"device": device, "backend": backend}
    for kind in registry.kinds:
        fields.update(kind.log_fields(configs[kind.name]))
    log.info(
        "models_loaded",
        **fields,
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
        kinds=registry.kinds,
    )
