"""The one protocol every frame model implements, and the device choice."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from vidwatch.config import ConfigError
from vidwatch.detectors.types import Detections, ModelInfo


@runtime_checkable
class Detector(Protocol):
    """A model that runs on a batch of sampled frames.

    Frames are OpenCV BGR ``uint8`` arrays of one video (so of one size); each detector
    converts to the colour order its model expects. It returns one Detections per frame,
    filling only its own lists.
    """

    infos: tuple[ModelInfo, ...]

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...


def resolve_device(setting: str) -> str:
    """``auto`` picks CUDA when present, else the CPU; an explicit CUDA without a GPU stops.

    PyTorch is imported only where a GPU could answer: importing it costs about a second of
    every start, and a host without a GPU driver's device files (``/dev/nvidiactl``,
    ``/dev/kfd`` for ROCm, ``/dev/dxg`` under WSL) has no CUDA device for it to find."""
    if setting == "cpu" or (setting == "auto" and not gpu_driver_present()):
        return "cpu"
    import torch

    if setting == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"MODEL_DEVICE={setting!r} but CUDA is not available on this host")
        index = int(setting.split(":", 1)[1]) if ":" in setting else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"MODEL_DEVICE={setting!r} but this host has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        return f"cuda:{index}"
    return "cpu"


GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def gpu_driver_present() -> bool:
    return any(os.path.exists(p) for p in GPU_DEVICE_FILES)
