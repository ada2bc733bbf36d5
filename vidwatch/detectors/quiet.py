"""Ultralytics' own output, kept out of the daemon's log and out of stdout.

Ultralytics logs through a handler of its own on stdout, at INFO unless ``YOLO_VERBOSE`` is
false: its settings banner on first import, "Loading ... for OpenVINO inference", the
export's "Predict: yolo predict ... Visualize: https://netron.app". None of it is for our
users (vidwatch logs what it loads itself), and stdout belongs to ``vidwatch analyze
--json``. Its warnings and errors still reach our log, through the root handler on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

_HANDLER = "ultralytics.utils.set_logging"
"""The name Ultralytics gives its stdout handler (ultralytics.utils.set_logging)."""


def quiet_ultralytics() -> None:
    """Call before importing Ultralytics (the banner comes at import) and again after: its
    logger then passes WARNING and above to the root handler (stderr, our format) and
    nothing to stdout. ``YOLO_VERBOSE`` set by the operator is left as it is."""
    os.environ.setdefault("YOLO_VERBOSE", "false")
    logger = logging.getLogger("ultralytics")
    for handler in [h for h in logger.handlers if h.get_name() == _HANDLER]:
        logger.removeHandler(handler)
    logger.propagate = True
    if logger.level < logging.WARNING:
        logger.setLevel(logging.WARNING)


@contextlib.contextmanager
def export_warnings_silenced() -> Iterator[None]:
    """Around an export: torch deprecates ``torch.jit.trace``, which Ultralytics' exporters
    and OpenVINO's ``convert_model`` (MTCNN's nets) still call, with a FutureWarning at each
    call (four for one start). Only those are ignored, only here; any other warning shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        yield


def import_yolo() -> type:
    """``ultralytics.YOLO``, imported with its output kept quiet (before and after)."""
    quiet_ultralytics()
    from ultralytics import YOLO  # type: ignore[attr-defined]  # a lazy __getattr__ export

    quiet_ultralytics()
    return YOLO
