"""``classify``: the error code a job's failure records, by the exception that ended it.

A pure function of the exception, so each type it maps is checked here directly, with
the codes status.json has always recorded for it."""

from __future__ import annotations

import errno

import pytest

from vidwatch.errors import JobError, JobInterrupted, VideoError
from vidwatch.jobs.attempt import Failure, classify
from vidwatch.r2.leases import LeaseLost
from vidwatch.r2.store import (
    ObjectNotFound,
    PermanentStoreError,
    PreconditionFailed,
    StorageFull,
    StoreError,
    TransientStoreError,
    UploadVerificationError,
)


def test_a_job_error_keeps_its_code_and_gets_a_page() -> None:
    assert classify(JobError("no frames")) == Failure(
        "job_failed", "no frames", page=True, level="warning"
    )
    assert classify(JobError("too big", code="source_too_large")) == Failure(
        "source_too_large", "too big", page=True, level="warning"
    )
    assert classify(VideoError("not a container")) == Failure(
        "invalid_video", "not a container", page=True, level="warning"
    )


@pytest.mark.parametrize(
    "exc",
    [
        StorageFull("bucket quota reached"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
    ],
    ids=["StorageFull", "ENOSPC", "EDQUOT"],
)
def test_a_full_store_or_disk_is_storage_full_without_a_page(exc: Exception) -> None:
    failure = classify(exc)
    assert (failure.code, failure.page, failure.level, failure.full) == (
        "storage_full",
        False,
        "error",
        True,
    )
    assert failure.message == str(exc)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (StoreError("boom"), "store_error"),
        (TransientStoreError("gave up after 60 s"), "store_unavailable"),
        (PermanentStoreError("access denied"), "store_misconfigured"),
        (ObjectNotFound("gone"), "not_found"),
        (PreconditionFailed("etag moved"), "precondition_failed"),
        (UploadVerificationError("sha256 differs"), "upload_not_verified"),
        (LeaseLost("taken over"), "lease_lost"),
    ],
)
def test_a_store_error_keeps_its_code_without_a_page(exc: StoreError, code: str) -> None:
    assert classify(exc) == Failure(code, str(exc), page=False, level="error")


def test_a_store_error_names_the_setting_to_check() -> None:
    exc = PermanentStoreError("access denied", setting="R2_SECRET_ACCESS_KEY")
    assert classify(exc).message == "access denied (check R2_SECRET_ACCESS_KEY)"


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EACCES, "Permission denied"),
        FileNotFoundError(errno.ENOENT, "No such file"),
        ValueError("bad frame"),
        RuntimeError("CUDA error"),
        KeyError("boxes"),
        JobInterrupted("never asked: run_job handles it first"),
    ],
    ids=["EACCES", "ENOENT", "ValueError", "RuntimeError", "KeyError", "JobInterrupted"],
)
def test_anything_else_is_an_internal_error_with_a_page_and_a_traceback(exc: Exception) -> None:
    assert classify(exc) == Failure(
        "internal_error", f"{type(exc).__name__}: {exc}", page=True, level="exception"
    )
