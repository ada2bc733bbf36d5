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


def test_a_source_keeps_a_video_extension_else_the_neutral_one():
    for ext in ("mp4", "MOV", ".mkv", "webm", "avi", "m4v", "ts"):
        assert keys.source_key(JOB, ext) == f"jobs/{JOB}/input/source.{ext.lower().lstrip('.')}"
    for ext in ("html", "svg", "exe", "xml", "htm", "js", "bin"):
        assert keys.source_key(JOB, ext) == f"jobs/{JOB}/input/source.bin"
    assert keys.source_ext(None) == keys.source_ext("") == "bin"
    assert keys.is_accepted_source_key(f"jobs/{JOB}/input/source.webm")
    assert keys.is_accepted_source_key(f"jobs/{JOB}/input/source.bin")
    assert not keys.is_accepted_source_key(f"jobs/{JOB}/input/source.html")


_TEXT = "text/plain; charset=utf-8"
SERVED = [
    # (key, content type, attachment)
    (f"jobs/{JOB}/input/source.mp4", "video/mp4", False),
    (f"jobs/{JOB}/input/source.webm", "video/webm", False),
    (f"jobs/{JOB.lower()}/input/source.mkv", "video/x-matroska", False),
    (f"jobs/{JOB}/input/source.bin", "application/octet-stream", True),
    (f"jobs/{JOB}/input/source.html", "application/octet-stream", True),
    (f"jobs/{JOB}/input/source.svg", "application/octet-stream", True),
    (f"jobs/{JOB}/input/poly.html", "application/octet-stream", True),
    (f"jobs/{JOB}/frames/det/frame_25.jpg", "image/jpeg", False),
    (f"jobs/{JOB}/people/person_0.jpg", "image/jpeg", False),
    (f"jobs/{JOB}/analysis/json/frame_25.json", "application/json", False),
    (f"jobs/{JOB}/analysis/toon/frame_25.toon", _TEXT, True),
    (f"jobs/{JOB}/analysis/results.json", "application/json", False),
    (f"jobs/{JOB}/status.json", "application/json", False),
    (f"jobs/{JOB}/analysis/exports/chapters.vtt", "text/vtt; charset=utf-8", True),
    (f"jobs/{JOB}/analysis/exports/scenes.csv", "text/csv; charset=utf-8", True),
    (f"jobs/{JOB}/analysis/exports/scenes.edl", _TEXT, True),
    (f"jobs/{JOB}/analysis/exports/timeline.otio", "application/json", True),
    (f"jobs/{JOB}/report.html", "text/html; charset=utf-8", False),
    (f"jobs/{JOB}/analysis/exports/evil.html", "application/octet-stream", True),
    (f"jobs/{JOB}/frames/det/frame_1.svg", "application/octet-stream", True),
    (f"jobs/{JOB}/people/x.html", "application/octet-stream", True),
    ("jobs/not-a-job/report.html", "application/octet-stream", True),
]


@pytest.mark.parametrize("key, ctype, attachment", SERVED)
def test_what_a_key_is_decides_its_type(key, ctype, attachment):
    served = keys.served_as(key)
    assert (served.content_type, served.attachment) == (ctype, attachment)
    assert keys.content_type_for(key) == ctype
    disposition = served.disposition(key)
    if attachment:
        assert disposition == f'attachment; filename="{key.rsplit("/", 1)[-1]}"'
    else:
        assert disposition == "inline"


def test_only_the_report_key_is_html():
    html = [key for key, ctype, _ in SERVED if "html" in ctype or "svg" in ctype or "xml" in ctype]
    assert html == [f"jobs/{JOB}/report.html"]


def test_a_store_writes_the_layouts_type_whatever_a_caller_passes():
    assert keys.stored_type(f"jobs/{JOB}/input/source.mp4", "text/html") == "video/mp4"
    assert keys.stored_type(f"jobs/{JOB}/input/x.html", "text/html") == "text/html"
    assert keys.stored_type("content/ab.json") == "application/json"
