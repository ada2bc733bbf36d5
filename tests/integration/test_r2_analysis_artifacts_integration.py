"""R2 JSON/TOON integration test (the user's document):

    uv run pytest tests/integration/test_r2_analysis_artifacts_integration.py -m integration -v

- Skips when required R2 credentials/config are missing (R2_ACCOUNT_ID or R2_ENDPOINT_URL,
  R2_BUCKET, R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY, from the environment).
- Writes JSON and TOON artifacts to R2 under the user's key layout, in a job namespace of
  its own, reads them back and validates them (non-empty, the bytes written, JSON that
  parses to the document, the content types).
- Always deletes what it wrote, in a ``finally``, also when a check or a write fails, and
  fails if anything it wrote is still there afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
from ulid import ULID

from vidwatch.config import load_settings
from vidwatch.r2.keys import frame_json_key, frame_toon_key, job_prefix
from vidwatch.r2.retry import RetryPolicy
from vidwatch.r2.s3 import S3Store
from vidwatch.r2.store import ObjectStore, StoreError
from vidwatch.toon_bridge import ToonBridge, json_difference

pytestmark = pytest.mark.integration

FRAMES = (0, 25)


def frame_document(job_id: str, frame: int) -> dict:
    return {
        "schema_version": 1,
        "job_id": job_id,
        "frame": frame,
        "time_s": frame / 25,
        "scene": 0,
        "objects": [
            {
                "label": "person",
                "class_id": 0,
                "confidence": 0.91,
                "box_xyxy": [12.0, 30.5, 200.0, 355.0],
            },
            {
                "label": "cell phone",
                "class_id": 67,
                "confidence": 0.47,
                "box_xyxy": [150.2, 200.0, 180.9, 260.4],
            },
        ],
        "faces": [],
    }


def r2_store_or_skip() -> S3Store:
    settings = load_settings()
    missing = settings.missing_r2_settings()
    if missing:
        pytest.skip(f"R2 credentials/config missing: {', '.join(missing)}")
    return S3Store.from_settings(settings, retry=RetryPolicy(deadline_s=30))


@contextmanager
def deleted_afterwards(store: ObjectStore) -> Iterator[list[str]]:
    """Collects the keys a test writes (each added before its write is tried) and deletes
    them all on the way out, whatever happened; raises if any is left behind."""
    written: list[str] = []
    try:
        yield written
    finally:
        try:
            store.delete_many(written)
        except StoreError:
            for key in written:  # one by one, so one refusal does not keep the rest
                with suppress(StoreError):
                    store.delete(key)
        left = [key for key in written if store.head(key) is not None]
        if left:
            raise AssertionError(f"test objects left in the bucket: {left}")


def write_and_check_artifacts(
    store: ObjectStore, job_id: str, written: list[str], toon: ToonBridge
) -> None:
    """The TOON twins are made by the product's own TOON runtime (@toon-format/toon)."""
    expected: dict[str, tuple[bytes, str]] = {}
    for frame in FRAMES:
        doc_json = json.dumps(frame_document(job_id, frame), separators=(",", ":")).encode()
        doc_toon = toon.encode(frame_document(job_id, frame)).encode()
        for key, data, content_type in (
            (frame_json_key(job_id, frame), doc_json, "application/json"),
            (frame_toon_key(job_id, frame), doc_toon, "text/plain; charset=utf-8"),
        ):
            written.append(key)
            store.put_bytes(key, data, content_type=content_type)
            expected[key] = (data, content_type)

    for key, (data, content_type) in expected.items():
        back = store.get_bytes(key)
        assert back, f"{key} read back empty"
        assert back == data, f"{key} read back different bytes"
        head = store.head(key)
        assert head is not None and head.size == len(data)
        assert head.content_type == content_type
    for frame in FRAMES:
        parsed = json.loads(store.get_bytes(frame_json_key(job_id, frame)))
        assert parsed == frame_document(job_id, frame)
        text = store.get_bytes(frame_toon_key(job_id, frame)).decode("utf-8")
        assert text.startswith("schema_version: 1\n") and f"frame: {frame}\n" in text
        assert json_difference(frame_document(job_id, frame), toon.decode(text)) is None
    listed = sorted(info.key for info in store.list(job_prefix(job_id)))
    assert listed == sorted(expected)


def test_r2_json_and_toon_artifacts_round_trip() -> None:
    store = r2_store_or_skip()
    job_id = str(ULID())  # a job namespace of its own: nothing else is touched
    toon = ToonBridge()
    try:
        with deleted_afterwards(store) as written:
            write_and_check_artifacts(store, job_id, written, toon)
        assert list(store.list(job_prefix(job_id))) == []
    finally:
        toon.close()
        store.close()
