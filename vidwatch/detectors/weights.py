"""Finding model weights: a path on disk, or a model name fetched once where a network is."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vidwatch.config import ConfigError


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resolve_yolo_weights(value: str, setting: str, *, allow_download: bool) -> Path:
    """The weights file for ``value`` (a path, or a name such as ``yolo11n.pt``).

    Raises ConfigError naming ``setting`` when there are no weights and none can be fetched.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path.resolve()
    off = f"{setting}=none to run without this model"
    looks_like_path = os.sep in value or "/" in value or not value.endswith(".pt")
    if looks_like_path:
        raise ConfigError(
            f"{setting}={value!r}: no such weights file {str(path.resolve())!r}; set {setting} "
            "to the path of a .pt file or to an Ultralytics model name such as "
            f"yolo11n.pt, or set {off}"
        )
    hint = (
        f"set {setting} to the path of a .pt file (the weights of {value}, copied onto this "
        f"host), or set {off}"
    )
    if not allow_download:
        raise ConfigError(
            f"{setting}={value!r}: weights not found on this host (looked for "
            f"{str(path.resolve())!r}) and ALLOW_MODEL_DOWNLOAD=false; {hint}"
        )
    from ultralytics.utils import SETTINGS

    cached = Path(SETTINGS.get("weights_dir", "weights")) / value
    if cached.is_file():
        return cached.resolve()
    try:
        from ultralytics.utils.downloads import attempt_download_asset

        fetched = Path(attempt_download_asset(value))
    except Exception as exc:  # noqa: BLE001 - any download failure means the same to the user
        raise ConfigError(
            f"{setting}={value!r}: weights not on this host and the download "
            f"failed ({type(exc).__name__}); {hint}"
        ) from None
    if not fetched.is_file():
        raise ConfigError(
            f"{setting}={value!r}: weights not on this host and could not be downloaded; {hint}"
        )
    return fetched.resolve()
