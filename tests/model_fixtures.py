"""Real models for tests: YOLO built from the yaml Ultralytics ships (random weights, the
real code path), saved to .pt files and loaded through DETECT_MODEL / SEGMENT_MODEL exactly
as a user's weights would be; MTCNN with the weights facenet-pytorch ships."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vidwatch.config import Settings, load_settings


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, Path]:
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("weights")
    out = {}
    for role, yaml in (("detect", "yolo11n.yaml"), ("segment", "yolo11n-seg.yaml")):
        path = folder / yaml.replace(".yaml", "-random.pt")
        YOLO(yaml).save(str(path))
        out[role] = path
    return out


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One MODEL_CACHE_DIR for the session: each export is made once, as on a host."""
    return tmp_path_factory.mktemp("model_cache")


@pytest.fixture(scope="session")
def model_env(weights, model_cache) -> dict[str, str]:
    """The settings a user with their own weights would set, pointing at the test weights."""
    return {
        "DETECT_MODEL": str(weights["detect"]),
        "SEGMENT_MODEL": str(weights["segment"]),
        "ALLOW_MODEL_DOWNLOAD": "false",
        "MODEL_DEVICE": "auto",
        "MODEL_CACHE_DIR": str(model_cache),
    }


@pytest.fixture
def make_settings(tmp_path, model_env) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        env = {
            **model_env,
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp_media"),
            "LOCAL_STORE_DIR": str(tmp_path / "store"),
            "INBOX_DIR": str(tmp_path / "inbox"),
            "TOON_ENABLED": "false",
        }
        env.update({k.upper(): str(v) for k, v in overrides.items()})
        return load_settings(env)

    return make


@pytest.fixture(scope="session")
def models(model_env, tmp_path_factory):
    """Every model loaded once for the session, as the daemon does."""
    from vidwatch.detectors.registry import load_models

    settings = load_settings(
        {**model_env, "TEMP_MEDIA_DIR": str(tmp_path_factory.mktemp("models_tmp"))}
    )
    return load_models(settings)
