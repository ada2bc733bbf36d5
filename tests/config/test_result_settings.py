"""Issue 21, point 5: one declaration of the settings that change results
(``vidwatch.config.settings``), read by the content key, the provenance and its schema; a
setting the analysis reads but declares neither way fails here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vidwatch.config import Settings, load_settings
from vidwatch.config.settings import (
    BY_WEIGHTS,
    RESULT_SETTINGS,
    declared_result_effects,
    result_settings,
)
from vidwatch.jobs.dedupe import content_key
from vidwatch.jobs.run import run_job
from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy
from vidwatch.pipeline.documents import ProvenanceSettings
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

MODELS = {"detect": {"name": "a.pt", "sha256": "11"}}
SOURCE = "ab" * 32


def _other_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return str(not value).lower()
    if isinstance(value, int):
        return str(value + 1)
    if isinstance(value, float):
        return str(value / 2)
    raise AssertionError(f"{name}: no other value for {value!r}")


@pytest.mark.parametrize("name", RESULT_SETTINGS)
def test_every_result_setting_changes_the_content_key(name):
    base = load_settings({})
    changed = load_settings({name.upper(): _other_value(name, getattr(base, name))})
    assert getattr(changed, name) != getattr(base, name)
    assert content_key(SOURCE, changed, MODELS) != content_key(SOURCE, base, MODELS)


def test_the_face_identity_settings_are_in_the_key_and_the_provenance():
    for name in ("face_identity_threshold", "face_identity_min_px", "face_identity_reuse_iou"):
        assert name in RESULT_SETTINGS
        assert name in ProvenanceSettings.model_fields
    assert set(RESULT_SETTINGS) | {"scene_detector"} == set(ProvenanceSettings.model_fields)
    base = load_settings({})
    assert content_key(SOURCE, base, MODELS) == content_key(
        SOURCE, load_settings({"WRITE_WORKERS": "2", "MODEL_BATCH_SIZE": "1"}), MODELS
    )
    assert result_settings(base)["face_identity_threshold"] == 0.6


class _Recording(Settings):
    """Settings that note every setting read from them."""

    def __getattribute__(self, name: str) -> Any:
        if name in Settings.model_fields:
            READ.add(name)
        return super().__getattribute__(name)


READ: set[str] = set()


@pytest.mark.models
def test_every_setting_the_analysis_reads_is_declared(media, model_env, tmp_path):
    """Loading the models and analysing a real video with faces (two people) reads these
    settings; each must say whether it changes results. A new pipeline setting declared
    neither way fails here until it is declared (and, if it changes results, hashed)."""
    from vidwatch.detectors.registry import load_models
    from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, analyze

    env = {
        **model_env,
        "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
        "LOCAL_STORE_DIR": str(tmp_path / "store"),
        "TOON_ENABLED": "false",
    }
    settings = _Recording.model_validate(dict(load_settings(env)))
    READ.clear()
    models = load_models(settings)
    store = LocalStore(tmp_path / "store")
    job_id = new_job_id()
    results = analyze(
        media / "cuts_h264.mp4",
        AnalysisContext(job_id=job_id, store=store, models=models),
        AnalysisOptions.from_settings(settings),
    )
    assert results.summary.people >= 2, "the identity code did not run"
    read = set(READ)
    assert "face_identity_threshold" in read and "sample_fps" in read, read
    declared = declared_result_effects()
    undeclared = sorted(read - set(declared))
    assert not undeclared, f"settings the analysis reads, declared neither way: {undeclared}"
    assert set(declared) - read <= {"torch_threads", "node_binary", "toon_timeout_s"} | {
        n for n, effect in declared.items() if effect is BY_WEIGHTS
    }, set(declared) - read


def _run(media_file: Path, settings: Settings, models, store: LocalStore) -> dict[str, Any]:
    job_id = new_job_id()
    staged = stage_copy(settings, job_id, media_file)
    spec = JobSpec(job_id=job_id, staged_source=staged, origin="cli", filename=media_file.name)
    run_job(spec, store=store, settings=settings, models=models, toon=None, dedupe=True)
    return json.loads(store.get_bytes(keys.status_key(job_id)))


@pytest.mark.models
def test_a_face_identity_threshold_change_analyses_the_same_bytes_again(media, models, tmp_path):
    """Issue 21, point 5: the same bytes after FACE_IDENTITY_THRESHOLD changed are analysed
    afresh, not answered ``duplicate_of`` the old job (with the old people)."""
    env = {
        "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
        "LOCAL_STORE_DIR": str(tmp_path / "store"),
        "TOON_ENABLED": "false",
        "DETECT_MODEL": models.settings.detect_model,
        "SEGMENT_MODEL": models.settings.segment_model,
    }
    store = LocalStore(tmp_path / "store")
    video = media / "single_shot.mp4"
    first = _run(video, load_settings(env), models, store)
    assert first["state"] == "completed" and first["duplicate_of"] is None
    again = _run(video, load_settings(env), models, store)
    assert again["duplicate_of"] == first["job_id"], "the same settings should be a duplicate"
    stricter = _run(video, load_settings({**env, "FACE_IDENTITY_THRESHOLD": "0.3"}), models, store)
    assert stricter["state"] == "completed"
    assert stricter["duplicate_of"] is None, "answered with the old job's people"
    assert stricter["content_key"] != first["content_key"]
    results = json.loads(store.get_bytes(keys.results_key(stricter["job_id"])))
    assert results["provenance"]["settings"]["face_identity_threshold"] == 0.3
