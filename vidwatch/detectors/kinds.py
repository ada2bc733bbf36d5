"""The registrations of the detectors vidwatch ships: YOLO (objects and masks) and MTCNN
(faces). Each reads its own slice of the settings; their classes (``yolo.py``,
``faces.py``) take plain arguments and never see ``Settings``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vidwatch.config import ConfigError, Settings
from vidwatch.detectors.base import Detector
from vidwatch.detectors.catalogue import (
    DetectorKind,
    LaneRuntime,
    Role,
    model_off,
    raise_config_errors,
)


# --- YOLO: objects and segments ------------------------------------------------------------
@dataclass(frozen=True)
class YoloConfig:
    """DETECT_MODEL, SEGMENT_MODEL, OBJECT_MIN_CONFIDENCE, ALLOW_MODEL_DOWNLOAD; and, once
    checked, the weights each model names (None where off)."""

    detect_model: str
    segment_model: str
    confidence: float
    allow_download: bool
    detect_weights: Path | None = None
    segment_weights: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> YoloConfig:
        return cls(
            detect_model=settings.detect_model,
            segment_model=settings.segment_model,
            confidence=settings.object_min_confidence,
            allow_download=settings.allow_model_download,
        )

    @property
    def enabled(self) -> bool:
        return not (model_off(self.detect_model) and model_off(self.segment_model))


def resolve_yolo(config: YoloConfig) -> YoloConfig:
    """The weights of DETECT_MODEL and SEGMENT_MODEL (None where off). Both are looked for
    before anything fails, and where both lack weights one ConfigError names both, so one
    start says everything there is to set (by default they name the same file)."""
    from vidwatch.detectors.weights import resolve_yolo_weights

    wanted: dict[str, list[str]] = {}
    for setting, value in (
        ("DETECT_MODEL", config.detect_model),
        ("SEGMENT_MODEL", config.segment_model),
    ):
        if not model_off(value):
            wanted.setdefault(value, []).append(setting)
    found: dict[str, Path] = {}
    errors: list[ConfigError] = []
    for value, names in wanted.items():
        try:
            found[value] = resolve_yolo_weights(
                value, tuple(names), allow_download=config.allow_download
            )
        except ConfigError as exc:
            errors.append(exc)
    raise_config_errors(errors)
    return dataclasses.replace(
        config,
        detect_weights=found.get(config.detect_model),
        segment_weights=found.get(config.segment_model),
    )


def build_yolo(config: YoloConfig, runtime: LaneRuntime) -> list[Detector]:
    """One model where DETECT_MODEL and SEGMENT_MODEL name the same weights (one inference
    fills both lists), else one per model that is on."""
    from vidwatch.detectors.yolo import YoloDetector

    def yolo(path: Path, name: str, roles: tuple[str, ...]) -> YoloDetector:
        return YoloDetector(
            path,
            name=name,
            roles=roles,
            confidence=config.confidence,
            device=runtime.device,
            backend=runtime.backend,
            cache_dir=runtime.cache_dir,
            openvino_config=runtime.openvino_config,
        )

    detect_path, segment_path = config.detect_weights, config.segment_weights
    if detect_path is not None and detect_path == segment_path:
        return [yolo(detect_path, config.detect_model, ("objects", "segments"))]
    detectors: list[Detector] = []
    if detect_path is not None:
        detectors.append(yolo(detect_path, config.detect_model, ("objects",)))
    if segment_path is not None:
        detectors.append(yolo(segment_path, config.segment_model, ("segments",)))
    return detectors


YOLO = DetectorKind(
    name="yolo",
    roles=(
        Role("detect", ("objects",), off="DETECT_MODEL=none"),
        Role("segment", ("segments",), off="SEGMENT_MODEL=none"),
    ),
    config=YoloConfig.of,
    enabled=lambda config: config.enabled,
    check=resolve_yolo,
    build=build_yolo,
    log_fields=lambda config: {"detect": config.detect_model, "segment": config.segment_model},
)


# --- MTCNN: faces ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FacesConfig:
    """FACES_ENABLED, FACE_MIN_CONFIDENCE and FACE_INT8."""

    enabled: bool
    min_confidence: float
    int8: bool = False

    @classmethod
    def of(cls, settings: Settings) -> FacesConfig:
        return cls(
            enabled=settings.faces_enabled,
            min_confidence=settings.face_min_confidence,
            int8=settings.face_int8,
        )


def build_faces(config: FacesConfig, runtime: LaneRuntime) -> list[Detector]:
    from vidwatch.detectors.faces import MtcnnFaceDetector

    return [
        MtcnnFaceDetector(
            min_confidence=config.min_confidence,
            device=runtime.device,
            backend=runtime.backend,
            cache_dir=runtime.cache_dir,
            openvino_config=runtime.openvino_config,
            int8=config.int8,
        )
    ]


FACES = DetectorKind(
    name="mtcnn",
    roles=(Role("faces", ("faces",), off="FACES_ENABLED=false"),),
    config=FacesConfig.of,
    enabled=lambda config: config.enabled,
    build=build_faces,
    log_fields=lambda config: {"faces": config.enabled},
)
