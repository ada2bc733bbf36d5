"""A detector that is not one of vidwatch's, written the way a new one is: this module (its
result type, its class, its settings slice and its ``DetectorKind``), then one
registration (``registry.register(KIND)``; in vidwatch, a line in ``DETECTORS``).

It labels each frame by its mean brightness: trivial, but a real computation on the real
frames the pipeline hands every detector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidwatch.config import Settings
from vidwatch.detectors.base import Detector
from vidwatch.detectors.catalogue import DetectorKind, LaneRuntime, Role
from vidwatch.detectors.types import Detections, ModelInfo

DARK_BELOW = 85.0


@dataclass(frozen=True, slots=True)
class Brightness:
    """One frame's mean brightness (0 to 255, over every pixel and channel) and its label."""

    mean: float
    label: str

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "mean": self.mean}


@dataclass(frozen=True)
class BrightnessConfig:
    """Its slice of the settings. It has no setting of its own: a real detector's settings
    are fields of Settings, read here and nowhere else."""

    dark_below: float

    @classmethod
    def of(cls, settings: Settings) -> BrightnessConfig:
        return cls(dark_below=DARK_BELOW)


class MeanBrightness:
    def __init__(self, config: BrightnessConfig) -> None:
        self._dark_below = config.dark_below
        self.infos = (
            ModelInfo("brightness", "mean-brightness", None, {"dark_below": config.dark_below}),
        )

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            mean = round(float(frame.mean()), 2)
            label = "dark" if mean < self._dark_below else "bright"
            out.append(Detections(brightness=(Brightness(mean, label),)))
        return out


def build(config: BrightnessConfig, runtime: LaneRuntime) -> list[Detector]:
    return [MeanBrightness(config)]


KIND = DetectorKind(
    name="brightness",
    roles=(Role("brightness", ("brightness",), off="BRIGHTNESS=off"),),
    config=BrightnessConfig.of,
    enabled=lambda config: True,
    build=build,
    log_fields=lambda config: {"brightness": True},
)
