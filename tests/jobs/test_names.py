"""The name rules every intake path shares (``vidwatch.jobs.names``), with fixed names."""

from __future__ import annotations

import pytest

from vidwatch.jobs.names import (
    FILENAME_CHANGED,
    MAX_NAME_BYTES,
    clean_filename,
    sniff_ext,
    source_ext,
)


def test_an_ordinary_name_is_kept_without_a_warning():
    for name in ("holiday.mp4", "Clip 01 (final).MOV", "café.webm", "👨\u200d👩\u200d👧.mp4"):
        cleaned = clean_filename(name, path_allowed=False)
        assert cleaned.name == name and cleaned.changes == () and cleaned.warning() is None


@pytest.mark.parametrize(
    "raw, name, said",
    [
        ("\u202egpj.mp4", "gpj.mp4", "1 bidirectional control character(s) removed (U+202E)"),
        ("a\u2066b\u2069\u200f.mkv", "ab.mkv", "3 bidirectional control character(s) removed"),
        ("tab\there\r\n.mp4", "tabhere.mp4", "3 control character(s) removed"),
        ("line\u2028sep.mp4", "linesep.mp4", "1 control character(s) removed"),
        ("bad\udcffbyte.mp4", "bad\ufffdbyte.mp4", "1 byte(s) that are not UTF-8 replaced"),
        ("  padded.mp4 ", "padded.mp4", "spaces at its ends removed"),
    ],
)
def test_what_is_removed_is_said(raw, name, said):
    cleaned = clean_filename(raw, path_allowed=False)
    assert cleaned.name == name
    warning = cleaned.warning()
    assert warning is not None and warning["code"] == FILENAME_CHANGED
    assert said in warning["message"]
    assert "\u202e" not in warning["message"] and "\u202e" not in warning["original"]


def test_the_original_is_kept_escaped():
    warning = clean_filename("\u202egpj.mp4").warning()
    assert warning is not None and warning["original"] == "\\u202egpj.mp4"


def test_a_long_name_is_cut_to_255_bytes_on_a_character_boundary_keeping_its_extension():
    cleaned = clean_filename("日本" * 100 + ".mp4")  # 600 bytes of stem
    assert cleaned.name is not None and cleaned.name.endswith(".mp4")
    size = len(cleaned.name.encode("utf-8"))
    assert MAX_NAME_BYTES - 3 < size <= MAX_NAME_BYTES
    assert cleaned.name.encode("utf-8").decode("utf-8") == cleaned.name
    assert f"cut from 604 to {size} bytes" in cleaned.changes[-1]
    assert clean_filename("x" * 400).name == "x" * 255
    no_ext = clean_filename("x" * 300 + "." + "y" * 30)  # an "extension" too long to keep
    assert no_ext.name == ("x" * 300 + "." + "y" * 30)[:255]


def test_a_folder_part_is_dropped_for_a_client_only():
    assert clean_filename("dir/sub/clip.MP4").name == "clip.MP4"
    assert clean_filename("C:\\Users\\me\\clip.mov").name == "clip.mov"
    assert clean_filename("dir/sub/clip.MP4").warning() is None
    assert clean_filename("a\\b.mp4", path_allowed=False).name == "a\\b.mp4"


def test_nothing_showable_left_is_none():
    for raw in ("/", "\u202e", " . ", ".."):
        assert clean_filename(raw).name is None
    assert clean_filename(None).name is None and clean_filename(None).warning() is None


def test_nfc_normalisation_is_no_change_to_report():
    cleaned = clean_filename("cafe\u0301.mp4")
    assert cleaned.name == "café.mp4" and cleaned.warning() is None


MP4 = b"\0\0\0\x18ftypisom\0\0\0\0"


@pytest.mark.parametrize(
    "name, head, ext",
    [
        ("clip.mp4", b"", "mp4"),
        ("clip.MKV", MP4, "mkv"),  # the user's listed extension wins
        ("poly.html", MP4, "mp4"),  # an unlisted one never names the key
        ("poly.svg", b"<svg/>", "bin"),
        ("run.exe", b"MZ", "bin"),
        ("noext", b"\x1aE\xdf\xa3" + b"\0" * 20 + b"webm", "webm"),
        ("noext", b"", "bin"),
        (None, MP4, "mp4"),
    ],
)
def test_the_source_extension(name, head, ext):
    assert source_ext(name, head) == ext


def test_sniff_ext_known_containers():
    assert sniff_ext(b"\0\0\0\x14ftypqt  \0\0\0\0") == "mov"
    assert sniff_ext(b"RIFF\0\0\0\0AVI LIST") == "avi"
    assert sniff_ext(b"\x89PNG\r\n\x1a\n") is None
