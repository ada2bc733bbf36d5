"""One poll or sweep of the bucket scanner as it is reported: what it saw, the store
requests it cost and its time, in /metrics and one log line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from vidwatch import metrics
from vidwatch.r2.calls import CallCounts

log = structlog.get_logger("vidwatch.intake.bucket")


@dataclass
class ScanReport:
    """One poll or sweep: its store requests, its time, what it saw."""

    kind: str
    calls: CallCounts = field(default_factory=CallCounts)
    seconds: float = 0.0
    markers: int = 0
    folders: int = 0
    """Job folders listed (the window's for a poll, all of ``jobs/`` for a sweep)."""
    inspected: int = 0
    submitted: int = 0
    markers_written: int = 0
    markers_deleted: int = 0
    marked: set[str] = field(default_factory=set)
    """The jobs with a pending marker (a poll's listing)."""
    listed: set[str] = field(default_factory=set)
    """The job folders listed: the window's for a poll, all of ``jobs/`` for a sweep."""

    def summary(self) -> dict[str, Any]:
        return {
            "took_s": round(self.seconds, 3),
            "calls": self.calls.as_dict(),
            "markers": self.markers,
            "folders": self.folders,
            "inspected": self.inspected,
            "submitted": self.submitted,
        }


def record_scan(report: ScanReport) -> None:
    """The report in /metrics and the log: a poll that found nothing logs at debug."""
    counted = report.calls.as_dict()
    for op, n in counted.items():
        metrics.BUCKET_STORE_CALLS.labels(scan=report.kind, op=op).inc(n)
    if report.kind == "poll":
        metrics.BUCKET_POLL_SECONDS.observe(report.seconds)
        metrics.BUCKET_PENDING_MARKERS.set(report.markers)
        for op in ("list", "get", "head", "put", "delete"):
            metrics.BUCKET_POLL_CALLS.labels(op=op).set(counted.get(op, 0))
        if report.submitted or report.inspected > report.markers:
            log.info("bucket_poll", **report.summary())
        else:
            log.debug("bucket_poll", **report.summary())
    else:
        metrics.BUCKET_SWEEP_SECONDS.observe(report.seconds)
        log.info("bucket_sweep", **report.summary())
