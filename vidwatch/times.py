"""Times as text, each kind written by one function: a time in a video (``video_time``:
the pages, the WebVTT chapters, the scenes CSV) and a wall-clock time in UTC (``utc_time``:
the documents, the webhooks, the catalog, the signed links' expiry). Formats of one file
type that count differently stay with it (an EDL's timecodes count frames: OpenTimelineIO
writes them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def video_time(seconds: float, *, millis: bool = True, hours: bool = False) -> str:
    """A time in a video, rounded to the millisecond (a negative one is 0): ``M:SS.mmm``,
    ``H:MM:SS.mmm`` past an hour; with ``hours`` always ``HH:MM:SS.mmm`` (WebVTT's cue
    times, PySceneDetect's timecodes); without ``millis`` no ``.mmm`` (the milliseconds
    are dropped, not rounded away)."""
    total_ms = max(0, round(float(seconds) * 1000))
    h, rest = divmod(total_ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    if hours:
        text = f"{h:02d}:{m:02d}:{s:02d}"
    elif h:
        text = f"{h}:{m:02d}:{s:02d}"
    else:
        text = f"{m}:{s:02d}"
    return f"{text}.{ms:03d}" if millis else text


def utc_time(ts: float | None = None, *, micros: bool = True) -> str:
    """Epoch seconds (now by default) as ISO 8601 in UTC with ``Z``: to the microsecond
    (``2026-11-23T23:59:01.250000Z``: the documents, the webhooks, the catalog), or with
    ``micros=False`` to the second (``2026-11-23T23:59:01Z``: the signed links' expiry,
    the library's and the runner's records)."""
    when = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micros else "%Y-%m-%dT%H:%M:%SZ")
