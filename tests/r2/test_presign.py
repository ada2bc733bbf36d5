"""Presigned URLs computed by ``r2.presign``: the same URL botocore makes at the same time,
for path-style and virtual-hosted buckets, odd keys, any TTL; and a signer that cannot
reproduce botocore's probe leaves every URL to botocore."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config

from vidwatch.r2.presign import Presigner

KEYS = ["jobs/01AB/frames/original/frame_1.jpg", "jobs/x/a b+c/ü~é=&?.jpg", "k"]


def _client(endpoint: str, style: str):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalr/XUtnFEMI+K7MDENG",
        region_name="auto",
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


@pytest.mark.parametrize(
    ("endpoint", "style"),
    [
        ("http://127.0.0.1:8333", "path"),
        ("https://acct.r2.cloudflarestorage.com", "path"),
        ("https://s3.eu-west-1.amazonaws.com", "virtual"),
    ],
)
def test_the_same_url_as_botocore_at_the_same_second(endpoint, style) -> None:
    client = _client(endpoint, style)

    def botocore(key: str, ttl_s: int) -> str:
        return client.generate_presigned_url(
            "get_object", Params={"Bucket": "media", "Key": key}, ExpiresIn=ttl_s
        )

    for key in KEYS:
        for ttl_s in (1, 3600, 7 * 24 * 3600):
            theirs = botocore(key, ttl_s)
            stamp = theirs.split("X-Amz-Date=")[1][:16]
            at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
            ours = Presigner(
                "AKIDEXAMPLE", "wJalr/XUtnFEMI+K7MDENG", botocore, clock=lambda at=at: at
            )
            assert ours.fast
            assert ours(key, ttl_s) == theirs


def test_a_form_it_cannot_reproduce_is_left_to_botocore() -> None:
    calls: list[str] = []

    def botocore(key: str, ttl_s: int) -> str:
        calls.append(key)
        return f"https://h/{key}?X-Amz-Security-Token=t&X-Amz-Signature=s"

    signer = Presigner("A", "S", botocore)
    assert not signer.fast
    assert signer("jobs/a.jpg", 60).startswith("https://h/jobs/a.jpg?")
    assert calls[-1] == "jobs/a.jpg"
