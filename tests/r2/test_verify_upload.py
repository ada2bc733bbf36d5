"""``upload_verified`` against the S3 store: a stored source that is cut short, altered,
or gone fails verification, so the caller keeps its local copy."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vidwatch.r2.s3 import MiB, S3Store
from vidwatch.r2.store import ObjectInfo, UploadVerificationError
from vidwatch.r2.verify import SHA256_META, upload_verified

from ..s3_servers import S3Bucket

KEY = "jobs/01JD3ZQ7W8X9Y0ABCDEFGHJKMN/input/source.mp4"


class Tampering:
    """The S3 store, with something done to the object between the upload and the check
    (what a cut connection, a faulty proxy or a concurrent writer would leave)."""

    def __init__(self, store: S3Store, tamper: Callable[[S3Store, str, bytes], None]) -> None:
        self._store = store
        self._tamper = tamper

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def put_file(self, key: str, path: Path, **kwargs: Any) -> ObjectInfo:
        info = self._store.put_file(key, path, **kwargs)
        self._tamper(self._store, key, path.read_bytes())
        return info


def truncate(store: S3Store, key: str, data: bytes) -> None:
    head = store.head(key)
    store.put_bytes(key, data[: len(data) // 2], metadata=head.metadata)


def flip_a_byte_and_lose_metadata(store: S3Store, key: str, data: bytes) -> None:
    store.put_bytes(key, data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])


def remove(store: S3Store, key: str, data: bytes) -> None:
    store.delete(key)


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, bytes, str]:
    data = os.urandom(6 * MiB + 321)
    path = tmp_path / "source.mp4"
    path.write_bytes(data)
    return path, data, hashlib.sha256(data).hexdigest()


def test_a_good_upload_verifies(s3_bucket: S3Bucket, source: tuple[Path, bytes, str]) -> None:
    path, data, digest = source
    store = s3_bucket.store(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    info = upload_verified(store, KEY, path, sha256=digest)
    assert info.size == len(data)
    assert info.metadata[SHA256_META] == digest
    assert info.etag.strip('"').endswith("-2")  # multipart: the ETag is no content hash
    store.close()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (truncate, "bytes after upload"),
        (flip_a_byte_and_lose_metadata, "checksum differs"),
        (remove, "missing after upload"),
    ],
)
def test_a_damaged_upload_is_not_verified(
    s3_bucket: S3Bucket,
    source: tuple[Path, bytes, str],
    tamper: Callable[[S3Store, str, bytes], None],
    message: str,
) -> None:
    path, _data, digest = source
    store = s3_bucket.store(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    with pytest.raises(UploadVerificationError, match=message):
        upload_verified(Tampering(store, tamper), KEY, path, sha256=digest)
    store.close()
