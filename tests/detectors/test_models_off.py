"""DETECT_MODEL=none / SEGMENT_MODEL=none: the models are off explicitly (no weights are
looked for), results carry empty lists and the provenance says why; the start-up error for
missing weights names this way out beside the weights path."""

from __future__ import annotations

import pytest

from vidwatch.config import ConfigError, load_settings
from vidwatch.detectors.registry import load_models
from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, analyze
from vidwatch.r2.local import LocalStore


def test_models_off_give_empty_lists_and_say_so(tmp_path, media):
    settings = load_settings(
        {
            "DETECT_MODEL": "none",
            "SEGMENT_MODEL": "NONE",
            "FACES_ENABLED": "false",
            "ALLOW_MODEL_DOWNLOAD": "false",
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            "SAMPLE_FPS": "1",
        }
    )
    models = load_models(settings)
    assert models.detectors == []
    store = LocalStore(tmp_path / "store")
    context = AnalysisContext(job_id="01JD3W5Q6Y7Z8A9B0C1D2E3F4G", store=store, models=models)
    results = analyze(
        media / "single_shot.mp4", context, AnalysisOptions.from_settings(settings)
    ).to_json()
    assert results["frames"]
    for frame in results["frames"]:
        assert frame["objects"] == [] and frame["segments"] == [] and frame["faces"] == []
    provenance = results["provenance"]["models"]
    # Issue 25 (14): the keys are the same whatever the settings; an off model says why.
    assert set(provenance) == {"detect", "segment", "faces", "identities"}
    for role, setting in (
        ("detect", "DETECT_MODEL=none"),
        ("segment", "SEGMENT_MODEL=none"),
        ("faces", "FACES_ENABLED=false"),
        ("identities", "FACES_ENABLED=false"),
    ):
        assert provenance[role]["name"] == "none"
        assert provenance[role]["sha256"] is None
        assert provenance[role]["enabled"] is False
        assert setting in provenance[role]["reason"]


@pytest.mark.parametrize("value", ["missing/yolo11n.pt", "yolo11n.pt"])
def test_missing_weights_name_the_way_out_beside_the_path(tmp_path, value, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {"DETECT_MODEL": value, "SEGMENT_MODEL": "none", "ALLOW_MODEL_DOWNLOAD": "false"}
    )
    with pytest.raises(ConfigError) as caught:
        load_models(settings)
    message = str(caught.value)
    assert str(tmp_path / value) in message
    assert "DETECT_MODEL=none" in message


def test_one_start_names_every_model_setting_without_weights(tmp_path, monkeypatch):
    """Issue 25 (12): by default DETECT_MODEL and SEGMENT_MODEL name the same file; offline
    one error names both, so the user sets both at once instead of learning of the second
    at the next start. Two different missing files are named in one error too."""
    monkeypatch.chdir(tmp_path)
    env = {"ALLOW_MODEL_DOWNLOAD": "false", "TEMP_MEDIA_DIR": str(tmp_path / "tmp")}
    with pytest.raises(ConfigError) as caught:
        load_models(load_settings(env))
    assert caught.value.settings == ("DETECT_MODEL", "SEGMENT_MODEL")
    message = str(caught.value)
    assert "DETECT_MODEL='yolo11n-seg.pt', SEGMENT_MODEL='yolo11n-seg.pt'" in message
    assert "set DETECT_MODEL and SEGMENT_MODEL to the path of a .pt file" in message
    assert "\n" not in message

    env.update({"DETECT_MODEL": "yolo11n.pt", "SEGMENT_MODEL": "missing/seg.pt"})
    with pytest.raises(ConfigError) as caught:
        load_models(load_settings(env))
    assert caught.value.settings == ("DETECT_MODEL", "SEGMENT_MODEL")
    message = str(caught.value)
    assert "DETECT_MODEL='yolo11n.pt'" in message and "SEGMENT_MODEL='missing/seg.pt'" in message
    assert "\n" not in message
