"""Stores for the library tests: the local folder, moto and SeaweedFS (the same contract)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vidwatch.r2.local import LocalStore
from vidwatch.r2.retry import RetryPolicy
from vidwatch.r2.store import ObjectStore


@pytest.fixture(params=["local", "moto", "seaweedfs"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store", workers=8)
        return
    bucket = request.getfixturevalue(f"{request.param}_bucket")
    s3 = bucket.store(workers=16, retry=RetryPolicy(deadline_s=10))
    try:
        yield s3
    finally:
        s3.close()


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store", workers=8)


@pytest.fixture(scope="session")
def face_models(tmp_path_factory):
    """MTCNN and dlib only (YOLO off: the library needs faces alone), once per session."""
    from vidwatch.config import load_settings
    from vidwatch.detectors.registry import load_models

    return load_models(
        load_settings(
            {
                "DETECT_MODEL": "none",
                "SEGMENT_MODEL": "none",
                "MODEL_WORKERS": "1",
                "TEMP_MEDIA_DIR": str(tmp_path_factory.mktemp("face_models")),
            }
        )
    )
