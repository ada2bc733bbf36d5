"""Where the models run: PyTorch, OpenVINO or ONNX Runtime (MODEL_BACKEND).

YOLO weights are exported once per weights file (keyed by its sha256, the backend and the
Ultralytics version) into MODEL_CACHE_DIR with Ultralytics' own exporter, then loaded
through ``YOLO()`` as usual. Exports run offline: the exporter's requirements (openvino,
onnx, onnxslim, onnxruntime) are dependencies of vidwatch, so Ultralytics never tries to
install anything. An export is written to a temporary folder and renamed into place, so
processes sharing the cache never see half an export.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from vidwatch.config import ConfigError

log = structlog.get_logger("vidwatch.detectors")

BACKENDS = ("auto", "torch", "openvino", "onnx")
EXPORT_IMGSZ = 640
_MODULES = {"openvino": "openvino", "onnx": "onnxruntime"}


def resolve_backend(setting: str, device: str) -> str:
    """``auto``: OpenVINO on the CPU (the fastest measured here, see docs/performance.md),
    PyTorch on a GPU. An explicit runtime that is missing, or a CPU runtime asked to run on
    a GPU, stops with a ConfigError naming MODEL_BACKEND."""
    if setting not in BACKENDS:
        raise ConfigError(f"MODEL_BACKEND={setting!r}: use one of {', '.join(BACKENDS)}")
    if setting == "auto":
        if device == "cpu" and importlib.util.find_spec("openvino") is not None:
            return "openvino"
        return "torch"
    if setting == "torch":
        return "torch"
    if device != "cpu":
        raise ConfigError(
            f"MODEL_BACKEND={setting!r} runs on the CPU but MODEL_DEVICE resolved to {device}; "
            "use MODEL_BACKEND=torch (or auto) on a GPU"
        )
    if importlib.util.find_spec(_MODULES[setting]) is None:
        raise ConfigError(
            f"MODEL_BACKEND={setting!r} but the {_MODULES[setting]} package is not installed"
        )
    return setting


def _ultralytics_version() -> str:
    from importlib.metadata import version

    return version("ultralytics")


def export_dir(cache_dir: Path, weights: Path, sha256: str, backend: str) -> Path:
    key = f"{weights.stem}-{sha256[:16]}-{backend}-ultralytics{_ultralytics_version()}"
    return cache_dir / "yolo" / key


def exported_yolo(weights: Path, sha256: str, backend: str, cache_dir: Path) -> tuple[Path, str]:
    """The exported model for ``weights`` on ``backend`` (exporting it on first use) and the
    model's task. Raises ConfigError naming MODEL_CACHE_DIR when the cache is not writable."""
    target = export_dir(cache_dir, weights, sha256, backend)
    done = target / "vidwatch-export.json"
    if not done.is_file():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _export(weights, sha256, backend, target)
        except OSError as exc:
            raise ConfigError(
                f"MODEL_CACHE_DIR={str(cache_dir)!r}: cannot write the {backend} export of "
                f"{weights.name} ({exc.strerror or exc})"
            ) from None
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - any exporter failure means the same here
            raise ConfigError(
                f"MODEL_BACKEND={backend!r}: exporting {weights.name} failed "
                f"({type(exc).__name__}: {exc}); set MODEL_BACKEND=torch to run it as it is"
            ) from None
    meta = json.loads(done.read_text())
    return target / meta["model"], meta["task"]


def _export(weights: Path, sha256: str, backend: str, target: Path) -> None:
    from vidwatch.detectors.quiet import export_warnings_silenced, import_yolo

    YOLO = import_yolo()
    log.info("model_export", weights=weights.name, backend=backend, cache=str(target))
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        work = Path(tmp)
        src = work / f"{weights.stem}.pt"
        shutil.copyfile(weights, src)
        model = YOLO(str(src))
        task = model.task
        # dynamic: the exported model takes the same letterboxed (rectangular) input as the
        # PyTorch model and any batch size, so both see the same pixels.
        with export_warnings_silenced():
            exported = model.export(
                format=backend,
                imgsz=EXPORT_IMGSZ,
                dynamic=True,
                simplify=True,
                device="cpu",
                verbose=False,
            )
        out = Path(exported)
        staged = work / "export"
        staged.mkdir()
        # Ultralytics knows the format by the name: <stem>_openvino_model/ or <stem>.onnx.
        shutil.move(str(out), staged / out.name)
        model_rel = out.name
        (staged / "vidwatch-export.json").write_text(
            json.dumps(
                {
                    "weights": weights.name,
                    "sha256": sha256,
                    "backend": backend,
                    "task": task,
                    "model": model_rel,
                    "ultralytics": _ultralytics_version(),
                }
            )
        )
        try:
            os.rename(staged, target)
        except OSError:
            # Another process finished the same export first: theirs serves.
            if not (target / "vidwatch-export.json").is_file():
                raise


def openvino_config(cache_dir: Path | None, threads: int | None = None) -> dict[str, Any]:
    """How vidwatch compiles OpenVINO models: the compiled-blob cache inside MODEL_CACHE_DIR
    (a faster second start) and, for model lanes, ``threads`` per compiled model without
    CPU pinning (pinned single-threaded models would all land on the same core)."""
    config: dict[str, Any] = {}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
        config["ENABLE_CPU_PINNING"] = False
    if cache_dir is None:
        return config
    folder = cache_dir / "openvino-blobs"
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = str(folder)
    return config


@contextlib.contextmanager
def compiling(config: dict[str, Any]) -> Iterator[None]:
    """Hold the compiled-blob cache's lock while a model compiles with ``config``.

    OpenVINO writes a compiled blob into CACHE_DIR in place and maps the blobs it finds
    there: a process reading a blob that another is still writing dies of SIGBUS (seen
    with two daemons starting at once on one MODEL_CACHE_DIR). One process compiles with
    the cache at a time (an exclusive ``flock`` on ``CACHE_DIR/.lock``), so a blob is
    whole before anyone maps it. Without a cache folder there is nothing to hold."""
    folder = config.get("CACHE_DIR")
    if not folder:
        yield
        return
    import fcntl

    with open(Path(folder) / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def compile_on_cpu(core: Any, model: Any, config: dict[str, Any]) -> Any:
    """``core.compile_model(model, "CPU", config)``, holding the blob cache's lock when
    ``config`` names one (``compiling``), the binding made ready for threads first."""
    binding_ready()
    with compiling(config):
        return core.compile_model(model, "CPU", config)


@functools.cache
def binding_ready() -> None:
    """Make OpenVINO's Python binding set up its numpy bridge now, in this thread.

    The first ``Tensor.data`` of a process (every ``InferRequest.infer`` with numpy inputs
    reads one) initialises a C++ static while holding the GIL, and lets the GIL go inside
    it: a second thread reaching the same static then waits for it with the GIL held, and
    the process hangs for good. Two model lanes making their first inference at once did
    that (in 2 of 9 fresh processes; 18 of 20 with eight threads and a short switch
    interval). Done once before any model is compiled, the race cannot happen."""
    import numpy as np
    import openvino as ov

    _ = ov.Tensor(np.zeros((1,), np.float32)).data


AUTO_LANES_MAX = 4
"""Auto never makes more lanes than this: each lane holds its own models and working
buffers (about 0.37 GB more peak RSS a lane on a 720p job, docs/performance.md)."""


def lanes_and_threads(setting: int, backend: str, device: str) -> tuple[int, int | None]:
    """Model lanes (MODEL_WORKERS, 0 = auto) and the threads each lane's OpenVINO models
    get. Auto: one single-threaded lane per CPU core on OpenVINO, where two single-threaded
    models side by side do about 1.4x the work of one model on two threads
    (docs/performance.md), at most AUTO_LANES_MAX lanes sharing the cores between them; one lane on
    PyTorch and on a GPU, which spread one call over the device."""
    cores = os.cpu_count() or 1
    auto = min(cores, AUTO_LANES_MAX) if backend == "openvino" and device == "cpu" else 1
    lanes = max(1, min(setting or auto, 32))
    if backend != "openvino":
        return lanes, None
    return lanes, max(1, cores // lanes)
