"""The ObjectStore protocol every store implements, its types and its errors."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from vidwatch.errors import VidwatchError


class StoreError(VidwatchError):
    """Base of every store error. ``setting`` names the setting to check, if any."""

    code = "store_error"

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class ObjectNotFound(StoreError):
    code = "not_found"


class PreconditionFailed(StoreError):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""

    code = "precondition_failed"


class TransientStoreError(StoreError):
    """Timeouts, 5xx, throttling, refused connections: worth retrying."""

    code = "store_unavailable"


class PermanentStoreError(StoreError):
    """403, no such bucket, bad credentials: retrying will not help."""

    code = "store_misconfigured"


class StorageFull(StoreError):
    """The store's disk is full (the local store: ENOSPC or a quota)."""

    code = "storage_full"


class UploadVerificationError(StoreError):
    """The stored object does not match what was staged (size or checksum)."""

    code = "upload_not_verified"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PutItem:
    key: str
    data: bytes
    content_type: str | None = None


UrlSigner = Callable[[str, int], str]
"""``signer(key, ttl_s)``: a URL any HTTP client can GET for ``ttl_s`` seconds. The local
store is given one at construction (the HTTP API's ``/files`` route); S3 presigns itself."""


class ObjectStore(Protocol):
    """What vidwatch needs of a bucket. Keys are ``/``-separated, without a leading ``/``.

    Callers ask the store what it can do (the attributes below), never which class it is.
    """

    name: str
    """``local`` or ``s3``: shown in logs and manifests."""

    expires_jobs: bool
    """True when the store removes old jobs on its own (the bucket's lifecycle rules on
    R2/S3, set by ``vidwatch r2 lifecycle --apply``); False when the daemon's retention must
    remove jobs older than ``R2_RETENTION_DAYS`` (the local folder)."""

    shared: bool
    """True when others write into the store too (a bucket): a source put under
    ``jobs/<job_id>/input/`` without a ``status.json`` is then a new job. The local folder
    belongs to this host's vidwatch alone."""

    local_files: bool
    """True when objects are files on this host (``local_path`` gives them) and links point
    at the URL signer given at construction: the HTTP API then serves ``/files``."""

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Write ``data`` whole. ``if_none_match``: only if absent; ``if_match``: only if the
        current ETag is this one. A lost condition raises PreconditionFailed."""
        ...

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload a local file (multipart where it is large)."""
        ...

    def put_many(self, items: Iterable[PutItem]) -> list[ObjectInfo]:
        """Upload many small objects concurrently; raises the first error after all ended."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound when absent."""
        ...

    def download_file(self, key: str, path: Path) -> None: ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's info, or None when absent."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order, across pages."""
        ...

    def delete(self, key: str) -> None:
        """Delete one object; deleting an absent key is not an error."""
        ...

    def delete_many(self, keys: Iterable[str]) -> None: ...

    def list_job_ids(
        self,
        *,
        start_after: str | None = None,
        limit: int | None = None,
        page_size: int = 1000,
        others: builtins.list[str] | None = None,
    ) -> Iterator[str]:
        """The job ids under ``jobs/`` in ascending order, one listing entry per job (not per
        object), page after page. ``start_after``: only ids after this one (a cursor for
        windowed polls); ``limit``: at most this many. Folders that are not job ids are
        left out, and appended to ``others`` when it is given."""
        ...

    def signed_url(self, key: str, ttl_s: int) -> str:
        """A URL any HTTP client can GET for ``ttl_s`` seconds."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file that holds ``key`` on this host, or None (absent, not a valid key, or
        a store whose objects are not local files)."""
        ...

    def location(self, prefix: str) -> str:
        """Where ``prefix`` lives, for people: a folder path or ``s3://bucket/prefix``."""
        ...

    def check(self) -> None:
        """Raise a StoreError when the store is not reachable or not usable."""
        ...

    def close(self) -> None: ...
