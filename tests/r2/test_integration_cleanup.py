"""The R2 integration test itself, run against moto: it works on any S3 endpoint, skips
without settings, and leaves nothing behind when a write or a check fails."""

from __future__ import annotations

from typing import Any

import pytest

from vidwatch.r2.store import TransientStoreError
from vidwatch.toon_bridge import ToonBridge

from ..integration import test_r2_analysis_artifacts_integration as it
from ..s3_servers import S3Bucket

R2_VARS = (
    "R2_ACCOUNT_ID",
    "R2_ENDPOINT_URL",
    "R2_BUCKET",
    "R2_ACCESS_KEY_ID",
    "R2_SECRET_ACCESS_KEY",
    "R2_REGION",
)


@pytest.fixture
def r2_env(moto_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    for name in R2_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_bucket.env().items():
        monkeypatch.setenv(name, value)
    return moto_bucket


def bucket_keys(bucket: S3Bucket) -> list[str]:
    client = bucket.client()
    try:
        return [o["Key"] for o in client.list_objects_v2(Bucket=bucket.name).get("Contents", [])]
    finally:
        client.close()


def test_skips_without_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in R2_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"R2_ACCOUNT_ID.*R2_BUCKET"):
        it.r2_store_or_skip()


def test_runs_against_an_s3_endpoint_and_cleans_up(r2_env: S3Bucket) -> None:
    seen: list[str] = []
    original = it.write_and_check_artifacts

    def spy(store: Any, job_id: str, written: list[str], toon: Any) -> None:
        original(store, job_id, written, toon)
        seen.extend(bucket_keys(r2_env))

    it.write_and_check_artifacts = spy
    try:
        it.test_r2_json_and_toon_artifacts_round_trip()
    finally:
        it.write_and_check_artifacts = original
    assert len(seen) == 4  # two frames, JSON and TOON, were really there
    assert any(k.endswith("/analysis/json/frame_25.json") for k in seen)
    assert any(k.endswith("/analysis/toon/frame_0.toon") for k in seen)
    assert bucket_keys(r2_env) == []


class Failing:
    """The store, with the n-th put written but answered with an error, or reads lying."""

    def __init__(self, store: Any, fail_put: int | None = None, corrupt_reads: bool = False):
        self._store, self._fail_put, self._corrupt = store, fail_put, corrupt_reads
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def put_bytes(self, key: str, data: bytes, **kwargs: Any) -> Any:
        self.puts += 1
        info = self._store.put_bytes(key, data, **kwargs)
        if self.puts == self._fail_put:
            raise TransientStoreError("answer lost")
        return info

    def get_bytes(self, key: str) -> bytes:
        data = self._store.get_bytes(key)
        return data[:-1] if self._corrupt else data


@pytest.mark.parametrize(
    ("failing", "error"),
    [
        ({"fail_put": 3}, TransientStoreError),
        ({"corrupt_reads": True}, AssertionError),
    ],
)
def test_cleans_up_when_it_fails(r2_env: S3Bucket, failing: dict, error: type) -> None:
    store = it.r2_store_or_skip()
    wrapped = Failing(store, **failing)
    with ToonBridge() as toon, pytest.raises(error), it.deleted_afterwards(wrapped) as written:
        it.write_and_check_artifacts(wrapped, "01JD3ZQ7W8X9Y0ABCDEFGHJKMN", written, toon)
    assert written  # something was written before the failure
    assert bucket_keys(r2_env) == []
    store.close()
