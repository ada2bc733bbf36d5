"""The boto3 clients of the S3 store: one process-wide session, the client settings R2
and other S3 servers take, and the Content-MD5 that older servers want on the operations
that must carry a body checksum."""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    # boto3-stubs (a dev dependency): the typed client.
    from mypy_boto3_s3 import S3Client

CHECKSUM_OPERATIONS = ("DeleteObjects", "PutBucketLifecycleConfiguration")
"""Operations that must carry a body checksum. botocore sends CRC32 (R2 and current S3
servers take it); older MinIO and Ceph releases insist on Content-MD5, so it goes along
too."""


def client_settings(connect_timeout_s: float, read_timeout_s: float) -> dict[str, Any]:
    """What every client of the store shares: checksums only where an operation requires
    them (boto3 1.36+ sends them by default in a way R2 rejects), path-style addresses."""
    return {
        "signature_version": "s3v4",
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "connect_timeout": connect_timeout_s,
        "read_timeout": read_timeout_s,
        "s3": {"addressing_style": "path"},
        "user_agent_extra": "vidwatch",
    }


def make_client(
    credentials: dict[str, Any],
    common: dict[str, Any],
    *,
    pool: int,
    attempts: int,
    content_md5: bool,
) -> S3Client:
    """One S3 client of the process's session: ``pool`` connections, botocore making each
    call at most ``attempts`` times; ``content_md5`` adds Content-MD5 to
    ``CHECKSUM_OPERATIONS``."""
    with _SESSION_LOCK:  # a Session is not thread-safe; the clients it makes are
        client = _session().client(
            "s3",
            **credentials,
            config=Config(
                **common,
                max_pool_connections=pool,
                retries={"total_max_attempts": attempts, "mode": "standard"},
            ),
        )
    if content_md5:
        for operation in CHECKSUM_OPERATIONS:
            client.meta.events.register(f"before-sign.s3.{operation}", _add_content_md5)
    return client


def _add_content_md5(request: Any, **_: Any) -> None:
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes | bytearray) and "Content-MD5" not in request.headers:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()


_SESSION_LOCK = threading.Lock()
_SESSION: list[boto3.session.Session] = []


def _session() -> boto3.session.Session:
    """One boto3 session per process: it caches the loaded service models, so a second
    client costs milliseconds instead of a tenth of a second. Call under _SESSION_LOCK."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]
