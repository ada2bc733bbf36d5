"""Verified uploads of sources: nothing local is deleted before the store holds the same
bytes (size and our own sha256, since multipart ETags are not content hashes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vidwatch.r2.store import ObjectInfo, ObjectStore, UploadVerificationError

SHA256_META = "sha256"


def file_sha256(path: Path, chunk: int = 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def upload_verified(
    store: ObjectStore, key: str, path: Path, *, sha256: str, content_type: str | None = None
) -> ObjectInfo:
    """Upload ``path`` to ``key`` and check that the stored object is the staged file.

    The check compares the size and the sha256 kept in the object's metadata; where the
    store did not keep the metadata, the object is read back and hashed.
    Raises UploadVerificationError when they differ.
    """
    size = path.stat().st_size
    store.put_file(key, path, content_type=content_type, metadata={SHA256_META: sha256})
    return verify_object(store, key, size=size, sha256=sha256)


def verify_object(
    store: ObjectStore,
    key: str,
    *,
    size: int,
    sha256: str,
    read_back: bool = True,
    local: str = "the staged source",
) -> ObjectInfo:
    """Check that the object at ``key`` holds ``size`` bytes with this sha256.

    The sha256 is taken from the object's metadata; where there is none, the object is read
    back and hashed, unless ``read_back`` is false (a user's own upload, already downloaded
    and hashed: reading it again would download it twice, so size and presence stand).
    """
    info = store.head(key)
    if info is None:
        raise UploadVerificationError(f"{key} is missing after upload")
    if info.size != size:
        raise UploadVerificationError(f"{key} holds {info.size} bytes after upload, {local} {size}")
    stored = info.metadata.get(SHA256_META)
    if stored is None and read_back:
        stored = hashlib.sha256(store.get_bytes(key)).hexdigest()
    if stored is not None and stored != sha256:
        raise UploadVerificationError(f"{key} checksum differs from {local}")
    return info
