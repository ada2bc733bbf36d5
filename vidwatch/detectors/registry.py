"""Builds the detectors the settings ask for, loading each model once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from vidwatch.config import Settings
from vidwatch.detectors.base import Detector, resolve_device
from vidwatch.detectors.scenes import ContentSceneTracker, SceneTracker
from vidwatch.detectors.types import ModelInfo

if TYPE_CHECKING:
    from pathlib import Path

    from vidwatch.detectors.identities import DlibFaceDescriber

log = structlog.get_logger("vidwatch.detectors")


MODEL_OFF = "none"
"""DETECT_MODEL / SEGMENT_MODEL value that turns that model off."""


def model_off(value: str) -> bool:
    return value.strip().lower() == MODEL_OFF


@dataclass
class ModelSet:
    """Everything a job needs from the models, loaded once per process."""

    detectors: list[Detector]
    device: str
    settings: Settings
    describer: DlibFaceDescriber | None = None
    """Face descriptors for identities (None: FACE_IDENTITIES or faces off)."""
    backend: str = "torch"

    @property
    def infos(self) -> dict[str, ModelInfo]:
        models: list[Detector | DlibFaceDescriber] = [*self.detectors]
        if self.describer is not None:
            models.append(self.describer)
        found = {info.role: info for m in models for info in m.infos}
        # A model turned off says so in the provenance instead of vanishing from it.
        for role, setting in (
            ("objects", self.settings.detect_model),
            ("segments", self.settings.segment_model),
        ):
            if role not in found and model_off(setting):
                found[role] = ModelInfo(
                    role, MODEL_OFF, None, {"enabled": False, "reason": _off_reason(role)}
                )
        return found

    def scene_tracker(self, fps: float) -> SceneTracker:
        return ContentSceneTracker(
            fps=fps,
            threshold=self.settings.scene_threshold,
            min_scene_len=self.settings.scene_min_len_frames,
            downscale_width=self.settings.scene_downscale_width,
        )


def prepare_model_env(settings: Settings) -> None:
    """Keep Ultralytics off the network when downloads are off, and its settings file in a
    folder we may write (the home folder is read-only under systemd's ProtectSystem)."""
    if not settings.allow_model_download:
        os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault(
        "YOLO_CONFIG_DIR", str((settings.temp_media_dir / ".ultralytics").resolve())
    )


def load_models(settings: Settings) -> ModelSet:
    """Resolve weights and load every model; ConfigError names the setting at fault."""
    prepare_model_env(settings)
    # Weights first, so a missing file fails before the slow imports.
    from vidwatch.detectors.weights import resolve_yolo_weights

    detect_path = (
        None
        if model_off(settings.detect_model)
        else resolve_yolo_weights(
            settings.detect_model, "DETECT_MODEL", allow_download=settings.allow_model_download
        )
    )
    segment_path = (
        None
        if model_off(settings.segment_model)
        else resolve_yolo_weights(
            settings.segment_model, "SEGMENT_MODEL", allow_download=settings.allow_model_download
        )
    )
    import torch

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    device = resolve_device(settings.model_device)
    from vidwatch.detectors.backends import resolve_backend

    backend = resolve_backend(settings.model_backend, device)
    cache_dir = settings.model_cache_dir

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
        )

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
            )
        )
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
    )
    return ModelSet(
        detectors=detectors,
        device=device,
        settings=settings,
        describer=describer,
        backend=backend,
    )


def _off_reason(role: str) -> str:
    setting = "DETECT_MODEL" if role == "objects" else "SEGMENT_MODEL"
    return f"{setting}=none: turned off by the operator; the {role} lists are empty"
