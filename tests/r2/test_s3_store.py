"""The S3 store beyond the shared contract: settings, error classes, retries, what goes on
the wire for R2."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.stub import Stubber

from vidwatch.config import ConfigError, load_settings
from vidwatch.r2 import open_store
from vidwatch.r2.retry import RetryPolicy
from vidwatch.r2.s3 import MiB, S3Store
from vidwatch.r2.s3_errors import CREDENTIALS_SETTING, classify_error
from vidwatch.r2.store import (
    ObjectNotFound,
    PermanentStoreError,
    PreconditionFailed,
    PutItem,
    StoreError,
    TransientStoreError,
)

from ..s3_servers import S3Bucket, free_port

R2_ENV = {
    "R2_ACCOUNT_ID": "0123456789abcdef0123456789abcdef",
    "R2_BUCKET": "media",
    "R2_ACCESS_KEY_ID": "key",
    "R2_SECRET_ACCESS_KEY": "secret",
}


def client_error(code: str, status: int, op: str = "PutObject") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} message"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        op,
    )


def classify(exc: BaseException) -> StoreError | None:
    return classify_error(
        exc,
        op="put",
        target="jobs/x.json",
        endpoint="https://r2.example",
        endpoint_setting="R2_ACCOUNT_ID",
    )


# --- settings ------------------------------------------------------------------------------
def test_endpoint_from_account_id() -> None:
    settings = load_settings(R2_ENV)
    store = open_store(settings)
    try:
        assert isinstance(store, S3Store)
        assert store.name == "s3"
        assert store.bucket == "media"
        assert (
            store.endpoint_url == "https://0123456789abcdef0123456789abcdef"
            ".r2.cloudflarestorage.com"
        )
        assert store.client.meta.region_name == "auto"
        assert store.endpoint_setting == "R2_ACCOUNT_ID"
        config = store.client.meta.config
        assert config.request_checksum_calculation == "when_required"
        assert config.response_checksum_validation == "when_required"
        assert config.signature_version == "s3v4"
        assert config.max_pool_connections >= settings.write_workers
        assert config.retries["total_max_attempts"] == 1  # the retries are ours
        # ...but a part of a multipart upload may be retried by botocore on its own
        assert store.transfer_client.meta.config.retries["total_max_attempts"] == 3
        assert store.transfer_client.meta.config.request_checksum_calculation == "when_required"
        assert store.workers == settings.write_workers
        # presigning is local: a URL for the R2 host, path-style, with the TTL asked for
        url = store.signed_url("jobs/a/b.jpg", settings.r2_url_ttl_seconds)
        assert url.startswith(
            "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com/media/jobs/a/b.jpg?"
        )
        assert "X-Amz-Expires=3600" in url
        assert "%2Fauto%2Fs3%2Faws4_request" in url
    finally:
        store.close()


def test_endpoint_url_replaces_the_account() -> None:
    env = {k: v for k, v in R2_ENV.items() if k != "R2_ACCOUNT_ID"}
    env["R2_ENDPOINT_URL"] = "http://127.0.0.1:9000"
    env["WRITE_WORKERS"] = "12"
    store = S3Store.from_settings(load_settings(env))
    try:
        assert store.endpoint_url == "http://127.0.0.1:9000"
        assert store.endpoint_setting == "R2_ENDPOINT_URL"
        assert store.workers == 12
        assert store.client.meta.config.max_pool_connections >= 12
    finally:
        store.close()


def test_from_settings_names_what_is_missing() -> None:
    env = {k: v for k, v in R2_ENV.items() if k != "R2_SECRET_ACCESS_KEY"}
    with pytest.raises(ConfigError, match="R2_SECRET_ACCESS_KEY"):
        S3Store.from_settings(load_settings(env))


def test_parts_below_5_mib_are_refused() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        S3Store(
            bucket="b",
            endpoint_url="http://127.0.0.1:1",
            access_key_id="k",
            secret_access_key="s",
            multipart_chunksize=4 * MiB,
        )


# --- error classes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "kind", "setting"),
    [
        (client_error("AccessDenied", 403), PermanentStoreError, CREDENTIALS_SETTING),
        (client_error("InvalidAccessKeyId", 403), PermanentStoreError, CREDENTIALS_SETTING),
        (client_error("SignatureDoesNotMatch", 403), PermanentStoreError, CREDENTIALS_SETTING),
        (client_error("403", 403, "HeadObject"), PermanentStoreError, CREDENTIALS_SETTING),
        (client_error("NoSuchBucket", 404), PermanentStoreError, "R2_BUCKET"),
        (client_error("InvalidBucketName", 400), PermanentStoreError, "R2_BUCKET"),
        (client_error("PreconditionFailed", 412), PreconditionFailed, None),
        (client_error("NoSuchKey", 404, "GetObject"), ObjectNotFound, None),
        (client_error("ConditionalRequestConflict", 409), TransientStoreError, None),
        (client_error("SlowDown", 503), TransientStoreError, None),
        (client_error("InternalError", 500), TransientStoreError, None),
        (client_error("ServiceUnavailable", 503), TransientStoreError, None),
        (client_error("TooManyRequests", 429), TransientStoreError, None),
        (client_error("RequestTimeout", 400), TransientStoreError, None),
        (client_error("InvalidArgument", 400), PermanentStoreError, None),
        (client_error("RequestTimeTooSkewed", 403), PermanentStoreError, None),
        (
            EndpointConnectionError(endpoint_url="https://r2.example"),
            TransientStoreError,
            "R2_ACCOUNT_ID",
        ),
        (ReadTimeoutError(endpoint_url="https://r2.example"), TransientStoreError, "R2_ACCOUNT_ID"),
        (
            ConnectionClosedError(endpoint_url="https://r2.example"),
            TransientStoreError,
            "R2_ACCOUNT_ID",
        ),
    ],
)
def test_classify(exc: BaseException, kind: type, setting: str | None) -> None:
    mapped = classify(exc)
    assert type(mapped) is kind
    assert mapped.setting == setting
    if setting is not None:
        assert setting in str(mapped)
    assert "jobs/x.json" in str(mapped)


def test_classify_leaves_other_errors_alone() -> None:
    assert classify(OSError("disk")) is None
    assert classify(ValueError("bug")) is None


# --- retries, without a server (botocore's Stubber answers) ---------------------------------
def stubbed_store(**kwargs: Any) -> tuple[S3Store, Stubber]:
    store = S3Store(
        bucket="media",
        endpoint_url="http://127.0.0.1:9",
        access_key_id="k",
        secret_access_key="s",
        region="auto",
        retry=kwargs.pop("retry", RetryPolicy(base_delay_s=0.01, deadline_s=5)),
        **kwargs,
    )
    stub = Stubber(store.client)
    stub.activate()
    return store, stub


PUT = {
    "Bucket": "media",
    "Key": "jobs/L/lease.json",
    "Body": b"{}",
    "ContentType": "application/json",
}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("InternalError", 500),
        ("ConditionalRequestConflict", 409),
    ],
)
def test_transient_answers_are_retried(code: str, status: int) -> None:
    store, stub = stubbed_store()
    stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
    stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
    stub.add_response("put_object", {"ETag": '"abc"'}, PUT)
    info = store.put_bytes("jobs/L/lease.json", b"{}")
    assert info.etag == '"abc"'
    stub.assert_no_pending_responses()


def test_permanent_answers_are_not_retried() -> None:
    store, stub = stubbed_store()
    stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(PermanentStoreError) as info:
        store.put_bytes("jobs/L/lease.json", b"{}")
    assert info.value.setting == CREDENTIALS_SETTING
    stub.assert_no_pending_responses()  # one answer used: one attempt


def test_a_lost_answer_does_not_lose_a_conditional_put(moto_bucket: S3Bucket) -> None:
    """The first put is written but its answer is lost; the retry then fails its own
    If-None-Match. The store sees its exact bytes in place and reports success."""
    store = moto_bucket.store(retry=RetryPolicy(base_delay_s=0.01, deadline_s=5))
    dropped: list[int] = []

    def drop_first_answer(**kwargs: Any) -> None:
        if not dropped:
            dropped.append(1)
            raise ConnectionClosedError(endpoint_url=store.endpoint_url)

    store.client.meta.events.register("after-call.s3.PutObject", drop_first_answer)
    info = store.put_bytes("jobs/L/lease.json", b'{"owner": "me"}', if_none_match=True)
    assert dropped == [1]
    assert store.get_bytes("jobs/L/lease.json") == b'{"owner": "me"}'
    assert info.etag == store.head("jobs/L/lease.json").etag

    # Someone else's lease after the same accident is still a lost race.
    other = moto_bucket.store(retry=RetryPolicy(base_delay_s=0.01, deadline_s=5))
    other.client.meta.events.register("after-call.s3.PutObject", drop_first_answer)
    dropped.clear()
    with pytest.raises(PreconditionFailed):
        other.put_bytes("jobs/L/lease.json", b'{"owner": "you"}', if_none_match=True)
    assert dropped == [1]
    assert store.get_bytes("jobs/L/lease.json") == b'{"owner": "me"}'
    store.close()
    other.close()


def test_no_checksum_headers_r2_would_reject(moto_bucket: S3Bucket, tmp_path) -> None:
    """boto3 1.36+ adds CRC checksums to uploads by default, which R2 refuses: the store's
    client sends them only where an operation requires one (DeleteObjects), and then
    with a Content-MD5 as well for older S3 servers."""
    store = moto_bucket.store(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    sent: dict[str, dict[str, str]] = {}

    def record(request: Any, event_name: str, **kwargs: Any) -> None:
        sent[event_name.rsplit(".", 1)[-1]] = {k.lower(): v for k, v in request.headers.items()}

    for client in (store.client, store.transfer_client):
        client.meta.events.register("before-send.s3", record)
    store.put_bytes("a.json", b"{}", if_none_match=True)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (6 * MiB))
    store.put_file("big.mp4", big)
    store.get_bytes("a.json")
    store.delete_many(["a.json", "big.mp4"])
    for op in (
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "GetObject",
    ):
        assert op in sent
        assert not [
            h
            for h in sent[op]
            if h.startswith(("x-amz-checksum", "x-amz-sdk-checksum", "x-amz-trailer"))
        ]
    assert "content-md5" in sent["DeleteObjects"]
    store.close()


# --- failures over the network -------------------------------------------------------------
def test_refused_connection_gives_up_after_the_bound() -> None:
    port = free_port()  # nothing listens there
    store = S3Store(
        bucket="media",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="k",
        secret_access_key="s",
        connect_timeout_s=1,
        retry=RetryPolicy(base_delay_s=0.05, max_delay_s=0.3, deadline_s=1.5),
    )
    attempts: list[int] = []
    store.client.meta.events.register("before-send.s3.PutObject", lambda **kw: attempts.append(1))
    started = time.monotonic()
    with pytest.raises(TransientStoreError) as info:
        store.put_bytes("jobs/x.json", b"{}")
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 4
    assert len(attempts) >= 3
    assert info.value.setting == "R2_ENDPOINT_URL"
    assert "gave up after" in str(info.value) and "R2_ENDPOINT_URL" in str(info.value)
    store.close()


def test_put_many_raises_after_all_ended(moto_bucket: S3Bucket) -> None:
    store = moto_bucket.store(workers=4)

    def refuse_one(params: dict[str, Any], **kwargs: Any) -> None:
        if params["Key"] == "k/bad.json":
            raise client_error("AccessDenied", 403)

    store.client.meta.events.register("before-parameter-build.s3.PutObject", refuse_one)
    items = [PutItem(f"k/{n}.json", b"{}") for n in range(20)]
    with pytest.raises(PermanentStoreError):
        store.put_many([*items[:10], PutItem("k/bad.json", b"{}"), *items[10:]])
    assert sorted(i.key for i in store.list("k/")) == sorted(i.key for i in items)
    store.close()
