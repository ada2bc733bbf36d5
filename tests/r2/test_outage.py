"""A moto server that goes away during uploads: the uploads retry and succeed once it is
back, or fail clearly after the bound; no upload reported as done is missing, and a source
whose upload failed is still on disk."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vidwatch.r2.retry import RetryPolicy
from vidwatch.r2.s3 import MiB, S3Store
from vidwatch.r2.store import PutItem, TransientStoreError
from vidwatch.r2.verify import upload_verified

from ..s3_servers import RestartableMotoServer

OUTAGE_S = 1.5


def make_store(server: RestartableMotoServer, bucket: str, deadline_s: float) -> S3Store:
    return server.server().store(
        bucket,
        workers=16,
        connect_timeout_s=1,
        read_timeout_s=5,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
        multipart_concurrency=2,
        retry=RetryPolicy(base_delay_s=0.05, max_delay_s=0.5, deadline_s=deadline_s),
    )


def outage_after(
    server: RestartableMotoServer, store: S3Store, operation: str, calls: int, restart: bool = True
) -> tuple[threading.Event, list[float]]:
    """Stop the server after ``calls`` answers to ``operation``; bring it back OUTAGE_S
    later. Returns an event set once it is back, and [stopped_at, restarted_at]."""
    seen: list[int] = []
    back = threading.Event()
    times: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        server.stop()
        times.append(time.monotonic())
        if restart:
            time.sleep(OUTAGE_S)
            server.start()
            times.append(time.monotonic())
            back.set()

    def count(**kwargs: Any) -> None:
        with lock:
            seen.append(1)
            if len(seen) == calls:
                threading.Thread(target=run, daemon=True).start()

    for client in (store.client, store.transfer_client):
        client.meta.events.register(f"after-call.s3.{operation}", count)
    return back, times


def count_sends(store: S3Store, operation: str) -> list[int]:
    sends: list[int] = []
    store.client.meta.events.register(f"before-send.s3.{operation}", lambda **kw: sends.append(1))
    return sends


def test_put_many_survives_an_outage(restartable_moto: RestartableMotoServer) -> None:
    bucket = restartable_moto.server().create_bucket()
    store = make_store(restartable_moto, bucket, deadline_s=20)
    back, times = outage_after(restartable_moto, store, "PutObject", calls=60)
    sends = count_sends(store, "PutObject")
    items = [PutItem(f"jobs/J/frames/original/frame_{n}.jpg", os.urandom(3000)) for n in range(400)]
    infos = store.put_many(items)
    assert back.is_set(), "the outage never happened"
    assert times[1] - times[0] >= OUTAGE_S
    assert len(sends) > len(items)  # some puts were retried
    assert [i.key for i in infos] == [i.key for i in items]
    listed = {i.key: i for i in store.list("jobs/J/")}
    assert set(listed) == {i.key for i in items}
    for item in items:
        assert listed[item.key].etag.strip('"') == hashlib.md5(item.data).hexdigest()
    store.close()


def test_multipart_upload_survives_an_outage(
    restartable_moto: RestartableMotoServer, tmp_path: Path
) -> None:
    bucket = restartable_moto.server().create_bucket()
    store = make_store(restartable_moto, bucket, deadline_s=20)
    back, _ = outage_after(restartable_moto, store, "UploadPart", calls=1)
    src = tmp_path / "source.mp4"
    data = os.urandom(16 * MiB + 7)
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    info = upload_verified(store, "jobs/J/input/source.mp4", src, sha256=digest)
    assert back.is_set(), "the outage never happened"
    assert info.size == len(data) and info.metadata["sha256"] == digest
    assert hashlib.sha256(store.get_bytes("jobs/J/input/source.mp4")).hexdigest() == digest
    store.close()


@pytest.mark.expect_error_logs("r2_put_many_failed")
def test_an_outage_past_the_bound_fails_clearly_and_keeps_the_source(
    restartable_moto: RestartableMotoServer, tmp_path: Path
) -> None:
    bucket = restartable_moto.server().create_bucket()
    store = make_store(restartable_moto, bucket, deadline_s=2)
    restartable_moto.stop()
    src = tmp_path / "source.mp4"
    data = os.urandom(200_000)
    src.write_bytes(data)
    started = time.monotonic()
    with pytest.raises(TransientStoreError) as info:
        upload_verified(
            store, "jobs/J/input/source.mp4", src, sha256=hashlib.sha256(data).hexdigest()
        )
    assert 2 <= time.monotonic() - started < 6
    assert "gave up after" in str(info.value)
    assert info.value.setting == "R2_ENDPOINT_URL"
    assert src.read_bytes() == data  # nothing local was touched

    # put_many: the error comes out; what did reach the store is readable once it is back
    with pytest.raises(TransientStoreError):
        store.put_many([PutItem(f"k/{n}.json", b"{}") for n in range(5)])
    restartable_moto.start()
    assert store.head("jobs/J/input/source.mp4") is None
    store.put_bytes("k/0.json", b"{}")
    assert [i.key for i in store.list("k/")] == ["k/0.json"]
    store.close()
