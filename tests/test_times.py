"""Times as text: the formats the pages, the exports and the documents have always used."""

from __future__ import annotations

import pytest

from vidwatch.times import utc_time, video_time


@pytest.mark.parametrize(
    ("seconds", "kwargs", "text"),
    [
        (0.0, {"millis": False}, "0:00"),
        (59.6, {"millis": False}, "0:59"),  # the milliseconds are dropped, not rounded away
        (61.25, {}, "1:01.250"),
        (3725.4996, {}, "1:02:05.500"),
        (3725.4996, {"hours": True}, "01:02:05.500"),  # WebVTT, PySceneDetect's CSV
        (2.0005, {"hours": True}, "00:00:02.001"),
        (-0.2, {"hours": True}, "00:00:00.000"),
    ],
)
def test_video_time(seconds: float, kwargs: dict[str, bool], text: str) -> None:
    assert video_time(seconds, **kwargs) == text


def test_utc_time() -> None:
    ts = 1_764_000_000.25
    assert utc_time(ts) == "2025-11-24T16:00:00.250000Z"
    assert utc_time(ts, micros=False) == "2025-11-24T16:00:00Z"
    assert utc_time().endswith("Z")
