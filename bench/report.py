"""What the benchmarks on a SeaweedFS server share: quiet logs, the report's header, and the
report printed as JSON (and written to ``--json``)."""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path
from typing import Any


def quiet_logs() -> None:
    """vidwatch's own log lines at warning and above only (stdout is the report)."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def report_header(server: Any) -> dict[str, Any]:
    """The server measured against and the host measured on."""
    return {
        "server": server.description,
        "host": f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})",
    }


def emit(report: dict[str, Any], path: Path | None) -> None:
    """Prints the report as JSON and, when ``path`` is given, writes it there too."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
