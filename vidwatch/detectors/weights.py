"""Finding model weights: a path on disk, or a model name fetched once where a network is."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from vidwatch.config import ConfigError


def package_folder(name: str) -> Path | None:
    """The folder of the installed package ``name``, found without importing (running) it;
    None when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    """The file's sha256, read once per process while its size and mtime stay the same
    (every model lane names the same weights in its provenance)."""
    st = os.stat(path)
    return _sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # the cache key: a changed file is read again
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resolve_yolo_weights(
    value: str, setting: str | tuple[str, ...], *, allow_download: bool
) -> Path:
    """The weights file for ``value`` (a path, or a name such as ``yolo11n.pt``).

    ``setting`` is the setting, or the settings, that name ``value`` (DETECT_MODEL and
    SEGMENT_MODEL share the default): the ConfigError raised when there are no weights and
    none can be fetched names every one of them, so one start says all there is to set.
    """
    names = (setting,) if isinstance(setting, str) else setting
    path = Path(value).expanduser()
    if path.is_file():
        return path.resolve()
    looked = str(path.resolve())
    looks_like_path = os.sep in value or "/" in value or not value.endswith(".pt")
    if looks_like_path:
        raise _missing(names, value, f"no such weights file {looked!r}", named=False)
    if not allow_download:
        why = f"weights not on this host (looked for {looked!r}) and ALLOW_MODEL_DOWNLOAD=false"
        raise _missing(names, value, why)
    from vidwatch.detectors.quiet import quiet_ultralytics

    quiet_ultralytics()
    from ultralytics.utils import SETTINGS

    quiet_ultralytics()

    cached = Path(SETTINGS.get("weights_dir", "weights")) / value
    if cached.is_file():
        return cached.resolve()
    try:
        from ultralytics.utils.downloads import attempt_download_asset

        fetched = Path(attempt_download_asset(value))
    except Exception as exc:  # noqa: BLE001 - any download failure means the same to the user
        raise _missing(
            names,
            value,
            f"weights not on this host (looked for {looked!r}) and the download failed "
            f"({type(exc).__name__})",
        ) from None
    if not fetched.is_file():
        raise _missing(
            names, value, f"weights not on this host (looked for {looked!r}) and not downloaded"
        )
    return fetched.resolve()


def _missing(names: tuple[str, ...], value: str, why: str, *, named: bool = True) -> ConfigError:
    """One line: the settings and their value, why there are no weights, what to set.
    ``named``: ``value`` is a model name (its weights may be copied in under any path)."""
    settings = ", ".join(f"{n}={value!r}" for n in names)
    both = " and ".join(names)
    to = (
        f"the path of a .pt file (the weights of {value}, copied onto this host)"
        if named
        else "the path of a .pt file or to an Ultralytics model name such as yolo11n-seg.pt"
    )
    off = " and ".join(f"{n}=none" for n in names)
    them = "these models" if len(names) > 1 else "this model"
    return ConfigError(
        f"{settings}: {why}; set {both} to {to}, or set {off} to run without {them}",
        settings=names,
    )
