"""The S3 store: Cloudflare R2, or any S3-compatible server (MinIO, SeaweedFS, moto).

For R2 the endpoint is ``https://<R2_ACCOUNT_ID>.r2.cloudflarestorage.com`` in region
``auto``; ``R2_ENDPOINT_URL`` replaces it. The client sends checksums only where an
operation requires them (boto3 1.36+ sends them by default in a way R2 rejects), uses
path-style addresses (R2, MinIO and SeaweedFS all take them) and makes each call once:
retries are ours (``vidwatch.r2.retry``), bounded in seconds, with jitter, so a short
outage does not lose uploads.

Errors come out as the store's classes: ``TransientStoreError`` after the retries gave up,
``PermanentStoreError`` at once for what retrying cannot fix, with ``.setting`` naming the
setting to check; ``PreconditionFailed`` for a lost conditional write.

ETags are kept as S3 sends them (quoted) in every ObjectInfo, so an ETag from ``head``,
``list`` or a put can be given back as ``if_match``.
"""

from __future__ import annotations

import builtins
import copy
import email.utils
import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError

from vidwatch import metrics
from vidwatch.r2.keys import JOBS_PREFIX, is_job_id, served_as, stored_type
from vidwatch.r2.presign import Presigner
from vidwatch.r2.putpool import PUT_POOL_PER_WORKER, PutPool
from vidwatch.r2.retry import RETRY_FENCE, RetryPolicy, call_with_retry, note_retry
from vidwatch.r2.s3_clients import client_settings, make_client
from vidwatch.r2.s3_errors import classify_error
from vidwatch.r2.store import (
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    PutItem,
    StoreError,
    TransientStoreError,
)

T = TypeVar("T")
if TYPE_CHECKING:
    # boto3-stubs (a dev dependency): the typed shapes of the client's answers.
    from mypy_boto3_s3.type_defs import ListObjectsV2OutputTypeDef

log = structlog.get_logger("vidwatch.r2.s3")

MiB = 1024 * 1024
MAX_URL_TTL_S = 7 * 24 * 3600
DELETE_BATCH = 1000


class S3Store:
    """An ObjectStore on one bucket of an S3 endpoint. Thread-safe: its two boto3 clients
    (single calls; transfers) are shared by all threads."""

    name = "s3"
    expires_jobs = True  # the bucket's lifecycle rules (``vidwatch r2 lifecycle --apply``)
    shared = True
    local_files = False

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str,
        access_key_id: str,
        secret_access_key: str,
        region: str = "auto",
        workers: int = 8,
        multipart_threshold: int = 16 * MiB,
        multipart_chunksize: int = 16 * MiB,
        multipart_concurrency: int = 8,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        endpoint_setting: str = "R2_ENDPOINT_URL",
        part_attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ValueError("bucket is required")
        if multipart_chunksize < 5 * MiB:
            raise ValueError("multipart parts must be at least 5 MiB (S3 and R2)")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.workers = max(1, int(workers))
        self._presign_lock = threading.Lock()
        self._presign: Callable[[str, int], str] | None = None
        self._presign_credentials = (access_key_id, secret_access_key)
        # put_many runs in one pool for the store's life; several writer threads share it,
        # as wide as their calls were when each made a pool of its own.
        self._puts = PutPool(PUT_POOL_PER_WORKER * self.workers, name="r2_put")
        self.retry = retry or RetryPolicy()
        self.endpoint_setting = endpoint_setting
        self._transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=multipart_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        common = client_settings(connect_timeout_s, read_timeout_s)
        credentials: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
        }
        self._common, self._credentials = common, credentials
        self._owns_transfer_client = True
        # Single calls: one attempt each, the retries are ours (call()).
        self._client = make_client(
            credentials, common, pool=self._puts.workers + 16, attempts=1, content_md5=True
        )
        # Transfers (put_file, download_file): botocore may retry a part or a ranged GET a
        # few times, so one failed part does not restart a large upload; our loop still
        # retries the whole transfer and bounds it in time.
        self._transfer_client = make_client(
            credentials,
            common,
            pool=multipart_concurrency + 2,
            attempts=max(1, int(part_attempts)),
            content_md5=False,
        )
        self._closed = threading.Event()

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> S3Store:
        """The store the R2 settings describe (``R2_ENDPOINT_URL`` replaces the endpoint
        derived from ``R2_ACCOUNT_ID``)."""
        from vidwatch.config import ConfigError

        endpoint = settings.r2_endpoint()
        secret = settings.r2_secret_access_key
        missing = [
            name
            for name, value in (
                ("R2_ACCOUNT_ID" if not settings.r2_endpoint_url else "R2_ENDPOINT_URL", endpoint),
                ("R2_BUCKET", settings.r2_bucket),
                ("R2_ACCESS_KEY_ID", settings.r2_access_key_id),
                ("R2_SECRET_ACCESS_KEY", secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"R2 store needs setting {', '.join(missing)}")
        kwargs: dict[str, Any] = {
            "bucket": settings.r2_bucket,
            "endpoint_url": endpoint,
            "access_key_id": settings.r2_access_key_id,
            "secret_access_key": secret.get_secret_value() if secret else None,
            "region": settings.r2_region or "auto",
            "workers": settings.write_workers,
            "endpoint_setting": "R2_ENDPOINT_URL" if settings.r2_endpoint_url else "R2_ACCOUNT_ID",
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def quick(self, deadline_s: float) -> S3Store:
        """A view of this store for reads that someone waits on (health checks, the API's
        status and results reads): the same bucket, but every call gives up within about
        ``deadline_s`` seconds (short connect and read timeouts, retries bounded by the
        deadline) instead of riding out an outage for a minute as job writes do. Its
        ``close`` closes only its own client."""
        view = copy.copy(self)
        view.retry = RetryPolicy(
            base_delay_s=0.1, max_delay_s=min(0.5, deadline_s), deadline_s=deadline_s
        )
        common = {
            **self._common,
            "connect_timeout": min(2.0, deadline_s),
            "read_timeout": deadline_s,
        }
        view._client = make_client(self._credentials, common, pool=16, attempts=1, content_md5=True)
        view._owns_transfer_client = False
        view._closed = threading.Event()
        view._puts = PutPool(self._puts.workers, name="r2_put")  # its close leaves ours
        return view

    @property
    def client(self) -> Any:
        """The boto3 client of single calls (also lifecycle rules and tests)."""
        return self._client

    @property
    def transfer_client(self) -> Any:
        """The boto3 client of put_file and download_file (multipart, ranged GETs)."""
        return self._transfer_client

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"

    # --- the retry loop -----------------------------------------------------------------------
    def call(
        self,
        op: str,
        target: str,
        fn: Callable[[], T],
        on_transient: Callable[[], None] | None = None,
    ) -> T:
        """Run ``fn`` (one or more botocore calls) with the store's retries; botocore errors
        come out as StoreErrors, anything else propagates unchanged. ``on_transient`` is
        called before each retry; the context's ``RETRY_FENCE``, if any, before each retry
        attempt (what it raises ends the retries)."""
        attempts = [0]

        def attempt() -> T:
            attempts[0] += 1
            if attempts[0] > 1 and (fence := RETRY_FENCE.get()) is not None:
                fence()
            try:
                return fn()
            except (BotoCoreError, ClientError, RetriesExceededError) as exc:
                mapped = classify_error(
                    exc,
                    op=op,
                    target=target,
                    endpoint=self.endpoint_url,
                    endpoint_setting=self.endpoint_setting,
                )
                if mapped is None:  # pragma: no cover - classify_error maps all three
                    raise
                raise mapped from exc

        def on_retry(n: int, delay: float, exc: BaseException) -> None:
            if on_transient is not None:
                on_transient()
            note_retry(op, exc)
            metrics.STORE_RETRIES.labels(op=op).inc()
            log.warning(
                "r2_retry", op=op, target=target, attempt=n, delay_s=round(delay, 3), error=str(exc)
            )

        started = time.monotonic()
        try:
            return call_with_retry(
                attempt,
                policy=self.retry,
                on_retry=on_retry,
                is_retryable=lambda e: isinstance(e, TransientStoreError),
            )
        except TransientStoreError as exc:
            if attempts[0] <= 1:
                raise
            spent = time.monotonic() - started
            raise TransientStoreError(
                f"gave up after {attempts[0]} attempts over {spent:.1f} s: {exc}",
                setting=exc.setting,
            ) from exc

    # --- writes -------------------------------------------------------------------------------
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
        content_type = stored_type(key, content_type)
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            **_type_headers(key, content_type),
        }
        if metadata:
            params["Metadata"] = dict(metadata)
        if if_none_match:
            params["IfNoneMatch"] = "*"
        if if_match is not None:
            params["IfMatch"] = if_match
        conditional = if_none_match or if_match is not None
        had_transient = [False]

        def put() -> Any:
            return self._client.put_object(**params)

        try:
            resp = self.call("put", key, put, lambda: had_transient.__setitem__(0, True))
        except PreconditionFailed:
            # A put whose answer was lost, then retried, loses its own condition. When the
            # object now holds exactly our bytes, that first attempt is what won.
            if had_transient[0]:
                current = self.head(key)
                ours = hashlib.md5(data, usedforsecurity=False).hexdigest()
                if (
                    current is not None
                    and current.size == len(data)
                    and current.etag.strip('"') == ours
                ):
                    return current
            raise
        except ObjectNotFound:
            if conditional:  # If-Match on an absent key
                raise PreconditionFailed(f"{key} does not exist") from None
            raise
        return ObjectInfo(
            key=key,
            size=len(data),
            etag=resp["ETag"],
            last_modified=_server_time(resp),
            content_type=content_type,
            metadata=dict(metadata or {}),
        )

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload through boto3's transfer manager: multipart above the threshold, parts of
        one size but the last (R2 requires it), several parts in flight. A failed part is
        retried by botocore (``part_attempts``), a failed upload whole by the store's loop;
        an incomplete multipart upload an outage leaves behind is removed by the bucket's
        lifecycle rule. The returned info comes from a HEAD after the upload."""
        path = Path(path)
        extra: dict[str, Any] = _type_headers(key, stored_type(key, content_type))
        if metadata:
            extra["Metadata"] = dict(metadata)

        def upload() -> None:
            with create_transfer_manager(self._transfer_client, self._transfer_config) as manager:
                manager.upload(str(path), self.bucket, key, extra_args=extra).result()

        self.call("put_file", key, upload)
        info = self.head(key)
        if info is None:
            raise TransientStoreError(
                f"{key} is not visible after its upload", setting=self.endpoint_setting
            )
        return info

    def put_many(self, items: Iterable[PutItem]) -> list[ObjectInfo]:
        return self._puts.map(
            lambda i: self.put_bytes(i.key, i.data, content_type=i.content_type), list(items)
        )

    # --- reads --------------------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        def get() -> bytes:
            resp = self._client.get_object(Bucket=self.bucket, Key=key)
            with resp["Body"] as body:
                return body.read()

        return self.call("get", key, get)

    def download_file(self, key: str, path: Path) -> None:
        def download() -> None:
            with create_transfer_manager(self._transfer_client, self._transfer_config) as manager:
                manager.download(self.bucket, key, str(path)).result()

        self.call("download", key, download)

    def head(self, key: str) -> ObjectInfo | None:
        def head() -> Any:
            try:
                return self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404 or exc.response.get("Error", {}).get("Code") in (
                    "404",
                    "NoSuchKey",
                    "NotFound",
                ):
                    return None
                raise

        resp = self.call("head", key, head)
        if resp is None:
            return None
        return ObjectInfo(
            key=key,
            size=int(resp["ContentLength"]),
            etag=resp["ETag"],
            last_modified=resp["LastModified"],
            content_type=resp.get("ContentType"),
            metadata=dict(resp.get("Metadata") or {}),
        )

    def list(self, prefix: str, *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` in key order, page after page (each page retried
        on its own). Listings carry no content type and no metadata: ``head`` has them."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size}
            if token:
                params["ContinuationToken"] = token
            page = self.call(
                "list", prefix or "/", functools.partial(self._client.list_objects_v2, **params)
            )
            for obj in page.get("Contents", []) or []:
                yield ObjectInfo(
                    key=obj["Key"],
                    size=int(obj["Size"]),
                    etag=obj["ETag"],
                    last_modified=obj["LastModified"],
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def list_job_ids(
        self,
        *,
        start_after: str | None = None,
        limit: int | None = None,
        page_size: int = 1000,
        others: builtins.list[str] | None = None,
    ) -> Iterator[str]:
        """A delimiter listing of ``jobs/`` (``CommonPrefixes``): one entry per job, page
        after page, each page retried on its own."""
        remaining = None if limit is None else max(0, int(limit))
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": JOBS_PREFIX,
            "Delimiter": "/",
        }
        if start_after is not None:
            # '0' is the character after '/': this key sorts after every key of that job
            # (``jobs/<id>/...``) and before the next job id of the same length.
            params["StartAfter"] = f"{JOBS_PREFIX}{start_after}0"
        token: str | None = None
        while remaining is None or remaining > 0:
            params["MaxKeys"] = page_size if remaining is None else min(page_size, remaining)
            if token:
                params["ContinuationToken"] = token
            request = dict(params)

            def list_page(request: dict[str, Any] = request) -> ListObjectsV2OutputTypeDef:
                return self._client.list_objects_v2(**request)

            page = self.call("list", JOBS_PREFIX, list_page)
            for prefix in page.get("CommonPrefixes", []) or []:
                job_id = prefix["Prefix"][len(JOBS_PREFIX) :].rstrip("/")
                if not is_job_id(job_id):
                    if others is not None and job_id:
                        others.append(job_id)
                    continue
                if start_after is not None and job_id <= start_after:
                    continue
                yield job_id
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    # --- deletes ------------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        self.call("delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=key))

    def delete_many(self, keys: Iterable[str]) -> None:
        """DeleteObjects in batches of 1,000 (the S3 limit); absent keys are no error."""
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            resp = self.call(
                "delete_many",
                f"{batch[0]} (+{len(batch) - 1})",
                functools.partial(
                    self._client.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                ),
            )
            failed = [
                e for e in resp.get("Errors", []) or [] if e.get("Code") not in ("NoSuchKey",)
            ]
            if failed:
                first = failed[0]
                raise StoreError(
                    f"delete of {len(failed)} of {len(batch)} keys failed at "
                    f"{self.endpoint_url}, first {first.get('Key')}: {first.get('Code')} "
                    f"{first.get('Message', '')}".rstrip()
                )

    # --- links and checks ---------------------------------------------------------------------
    def signed_url(self, key: str, ttl_s: int) -> str:
        """A presigned GET (SigV4, computed locally, no request) valid ``ttl_s`` seconds;
        ``r2.presign`` computes it, checked once against botocore's. It names the type and
        disposition of what the key is (``keys.served_as``), so the answer does not depend
        on the type an object was uploaded with (a user's bucket upload may say
        ``text/html``)."""
        ttl_s = int(ttl_s)
        if not 1 <= ttl_s <= MAX_URL_TTL_S:
            raise ValueError(f"signed URL lifetime must be 1 s to 7 days, got {ttl_s} s")
        if self._presign is None:
            with self._presign_lock:
                if self._presign is None:
                    self._presign = Presigner(
                        *self._presign_credentials,
                        self._botocore_presign,
                        response_params=response_params,
                    )
        return self._presign(key, ttl_s)

    def _botocore_presign(self, key: str, ttl_s: int) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        served = served_as(key)
        params["ResponseContentType"] = served.content_type
        params["ResponseContentDisposition"] = served.disposition(key)
        return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s)

    def local_path(self, key: str) -> Path | None:
        return None  # objects live in the bucket

    def location(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def check(self) -> None:
        """HEAD the bucket: raises PermanentStoreError naming R2_BUCKET or the credentials,
        or TransientStoreError naming the endpoint setting once the retries gave up."""

        def head_bucket() -> None:
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404:  # HEAD has no body: the code is just "404"
                    exc.response.setdefault("Error", {})["Code"] = "NoSuchBucket"
                raise

        self.call("check", f"bucket {self.bucket}", head_bucket)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._puts.close()
            self._client.close()
            if self._owns_transfer_client:
                self._transfer_client.close()


def response_params(key: str) -> dict[str, str]:
    """The query parameters of a presigned GET that name what ``key`` is (in the order
    ``_botocore_presign`` passes them)."""
    served = served_as(key)
    return {
        "response-content-type": served.content_type,
        "response-content-disposition": served.disposition(key),
    }


def _type_headers(key: str, content_type: str) -> dict[str, str]:
    """``ContentType`` and, where a browser should save rather than show the object,
    ``ContentDisposition``: a plain GET of the object answers as the /files route does."""
    headers = {"ContentType": content_type}
    served = served_as(key)
    if served.attachment and served.content_type == content_type:
        headers["ContentDisposition"] = served.disposition(key)
    return headers


def _server_time(resp: dict[str, Any]) -> datetime:
    """The server's Date header of a response (the object's time, near enough), else now."""
    date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        try:
            return email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)
