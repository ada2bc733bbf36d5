from __future__ import annotations

from pathlib import Path

import pytest

from vidwatch.config import ConfigError, load_settings


def test_defaults_of_the_users_document_and_ours():
    s = load_settings({})
    assert (s.r2_url_ttl_seconds, s.r2_retention_days, s.r2_abort_multipart_days) == (3600, 7, 1)
    assert s.cleanup_local_video_after_upload_default is True
    assert s.sample_fps == 1.0 and s.detect_model == "yolo11n-seg.pt"
    assert s.segment_model == "yolo11n-seg.pt" and s.model_device == "auto"
    assert (s.object_min_confidence, s.face_min_confidence) == (0.25, 0.9)
    assert s.local_store_dir == Path("store") and s.inbox_dir == Path("inbox")
    assert not s.r2_requested()
    assert s.face_identities is True and s.face_identity_threshold == 0.6
    assert (s.face_identity_min_px, s.face_identity_reuse_iou) == (32, 0.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAMPLE_FPS", "0"),
        ("SAMPLE_FPS", "abc"),
        ("MODEL_DEVICE", "tpu"),
        ("OBJECT_MIN_CONFIDENCE", "1.5"),
        ("R2_URL_TTL_SECONDS", "-3"),
        ("CLEANUP_LOCAL_VIDEO_AFTER_UPLOAD_DEFAULT", "maybe"),
        ("DETECT_MODEL", " "),
        ("FACE_IDENTITIES", "perhaps"),
        ("FACE_IDENTITY_THRESHOLD", "0"),
        ("FACE_IDENTITY_MIN_PX", "2"),
        ("FACE_IDENTITY_REUSE_IOU", "1.5"),
    ],
)
def test_invalid_values_name_the_setting_in_one_line(name, value):
    with pytest.raises(ConfigError) as err:
        load_settings({name: value})
    message = str(err.value)
    assert name in message and "\n" not in message


def test_cuda_device_forms_accepted():
    assert load_settings({"MODEL_DEVICE": "CUDA:1"}).model_device == "cuda:1"


def test_missing_r2_settings_are_named():
    s = load_settings({"R2_BUCKET": "b"})
    assert s.r2_requested()
    assert s.missing_r2_settings() == ["R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"]
    s = load_settings(
        {
            "R2_ENDPOINT_URL": "http://127.0.0.1:9",
            "R2_BUCKET": "b",
            "R2_ACCESS_KEY_ID": "k",
            "R2_SECRET_ACCESS_KEY": "s",
        }
    )
    assert s.missing_r2_settings() == [] and s.r2_endpoint() == "http://127.0.0.1:9"
    assert load_settings({"R2_ACCOUNT_ID": "abc"}).r2_endpoint() == (
        "https://abc.r2.cloudflarestorage.com"
    )


@pytest.mark.expect_error_logs("r2_setting_missing")
def test_partial_r2_configuration_stops_the_start():
    from vidwatch.r2 import open_store

    with pytest.raises(ConfigError, match="R2_SECRET_ACCESS_KEY"):
        open_store(load_settings({"R2_BUCKET": "b", "R2_ACCOUNT_ID": "a", "R2_ACCESS_KEY_ID": "k"}))


def test_the_settings_reference_table_names_every_setting():
    import re

    from vidwatch.config.settings import Settings

    page = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    table = page[page.index("# Settings") :]
    table = table[: table.index("\n## ", 1)] if "\n## " in table else table
    named = set(re.findall(r"`([A-Z0-9_]+)`", table))
    missing = {name.upper() for name in Settings.model_fields} - named
    assert not missing, f"settings the settings reference's table does not name: {missing}"
