"""The S3 store answers like the /files route: each object is written with the type of
what its key is (``keys.served_as``), whatever a caller passed, by one put, many puts or a
multipart upload; and a presigned GET names that type and disposition, so even an object a
user uploaded with ``text/html`` comes back as what its key is. On moto and SeaweedFS."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.s3_servers import S3Bucket
from tests.test_keys import SERVED
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.store import PutItem

HOSTILE = b"<!doctype html><script>document.title='pwned'</script>"
MiB = 1024 * 1024


def _keys(job_id: str) -> list[tuple[str, str, bool]]:
    from tests.test_keys import JOB

    return [
        (key.replace(JOB, job_id).replace(JOB.lower(), job_id.lower()), ctype, attachment)
        for key, ctype, attachment in SERVED
    ]


def _check_presigned(store, key: str, ctype: str, attachment: bool) -> None:
    resp = httpx.get(store.signed_url(key, 600))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == ctype, key
    want = f'attachment; filename="{key.rsplit("/", 1)[-1]}"' if attachment else "inline"
    assert resp.headers["content-disposition"] == want, key


def test_objects_are_written_and_linked_as_what_their_key_is(s3_bucket: S3Bucket) -> None:
    store = s3_bucket.store()
    client = s3_bucket.client()
    served = _keys(new_job_id())
    try:
        half = len(served) // 2
        for key, _, _ in served[:half]:
            store.put_bytes(key, HOSTILE, content_type="text/html")
        store.put_many([PutItem(key, HOSTILE, "text/html") for key, _, _ in served[half:]])
        for key, ctype, attachment in served:
            head = client.head_object(Bucket=s3_bucket.name, Key=key)
            layout = keys.served_as(key).kind != "other"
            # A key outside the layout keeps what its writer (vidwatch) said it is.
            want = ctype if layout else "text/html"
            if want == keys.OCTET_STREAM and s3_bucket.server.name == "seaweedfs":
                # SeaweedFS stores application/octet-stream as a type guessed from the
                # key's extension (R2 and S3 keep what was sent); the link still says
                # what the key is (below).
                want = head["ContentType"]
            assert head["ContentType"] == want, key
            if attachment and layout:
                assert head["ContentDisposition"] == keys.served_as(key).disposition(key)
            _check_presigned(store, key, ctype, attachment)
    finally:
        client.close()
        store.close()


def test_a_multipart_source_and_a_users_own_upload(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    store = s3_bucket.store(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    client = s3_bucket.client()
    job_id = new_job_id()
    try:
        big = tmp_path / "source.mp4"
        big.write_bytes(HOSTILE + b"\0" * (6 * MiB))
        key = keys.source_key(job_id, "mp4")
        info = store.put_file(key, big, content_type="text/html")
        assert info.content_type == "video/mp4"
        _check_presigned(store, key, "video/mp4", False)

        # A bucket user's upload says what it likes; its link says what the key is.
        for key, ctype, attachment in [
            (keys.source_key(job_id, "webm"), "video/webm", False),
            (f"jobs/{job_id}/input/source.html", "application/octet-stream", True),
            (f"jobs/{job_id}/input/poly.svg", "application/octet-stream", True),
        ]:
            client.put_object(Bucket=s3_bucket.name, Key=key, Body=HOSTILE, ContentType="text/html")
            _check_presigned(store, key, ctype, attachment)
    finally:
        client.close()
        store.close()


@pytest.mark.parametrize("key", [k for k, _, _ in SERVED][:3])
def test_presigned_links_name_type_and_disposition(key: str) -> None:
    """The presigned request itself carries the overrides (computed locally)."""
    from vidwatch.r2.s3 import S3Store

    store = S3Store(
        bucket="b",
        endpoint_url="http://127.0.0.1:9",
        access_key_id="a",
        secret_access_key="s",
        region="auto",
    )
    url = store.signed_url(key, 60)
    assert "response-content-type=" in url and "response-content-disposition=" in url
    # Signed here (r2.presign), not by botocore: its URL matched botocore's at the probe.
    assert store._presign is not None and store._presign.fast
    store.close()
