from __future__ import annotations

import pytest

from vidwatch.r2 import keys

JOB = "01JD3ZQ7W8X9Y0ABCDEFGHJKMN"


def test_layout_of_the_users_document():
    assert keys.source_key(JOB, ".MP4") == f"jobs/{JOB}/input/source.mp4"
    assert keys.frame_image_key(JOB, "seg", 50) == f"jobs/{JOB}/frames/seg/frame_50.jpg"
    assert keys.frame_json_key(JOB, 7) == f"jobs/{JOB}/analysis/json/frame_7.json"
    assert keys.frame_toon_key(JOB, 7) == f"jobs/{JOB}/analysis/toon/frame_7.toon"
    assert keys.status_key(JOB) == f"jobs/{JOB}/status.json"
    assert keys.results_key(JOB) == f"jobs/{JOB}/analysis/results.json"


@pytest.mark.parametrize("bad", ["../etc", "01JD3", "01jd3zq7w8x9y0abcdefghjkmn", "", "a/b"])
def test_malformed_job_ids_are_refused(bad):
    with pytest.raises(ValueError):
        keys.job_prefix(bad)


def test_source_keys_parse_back():
    assert keys.parse_source_key(f"jobs/{JOB}/input/source.webm") == (JOB, "webm")
    assert keys.parse_source_key(f"jobs/{JOB}/input/other.webm") is None
    assert keys.parse_source_key("jobs/../input/source.mp4") is None
    assert keys.job_id_of(f"jobs/{JOB}/status.json") == JOB
    assert keys.job_id_of("other/x") is None


def test_unknown_image_kind_and_bad_ext():
    with pytest.raises(ValueError):
        keys.frame_image_key(JOB, "thumb", 1)
    with pytest.raises(ValueError):
        keys.source_key(JOB, "m p4")
