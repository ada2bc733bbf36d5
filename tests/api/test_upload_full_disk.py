"""Issue 16, case 3 (uploads): an upload larger than the staging disk's free space answers
507 with a JSON error and leaves nothing behind, whether its size is declared or streamed.
TEMP_MEDIA_DIR is a real 2 MiB tmpfs."""

from __future__ import annotations

import os
from collections.abc import Iterator

from tests.api.api_harness import BOUNDARY, MULTIPART_TYPE, local_api, part_header, serve
from tests.full_disk import small_tmpfs
from vidwatch.config import load_settings

MiB = 1024 * 1024


def test_an_upload_that_does_not_fit_is_507_and_leaves_nothing(tmp_path):
    with small_tmpfs(tmp_path / "staging", 2 * MiB) as staging:
        settings = load_settings(
            {"TEMP_MEDIA_DIR": str(staging), "LOCAL_STORE_DIR": str(tmp_path / "store")}
        )
        submitted = []
        app, store = local_api(settings, submitted.append, secret=b"k" * 32)
        video = os.urandom(3 * MiB)

        def streamed() -> Iterator[bytes]:  # chunked: no size known in advance
            yield part_header("file", b"big.mp4")
            for start in range(0, len(video), 256 * 1024):
                yield video[start : start + 256 * 1024]
            yield f"\r\n--{BOUNDARY}--\r\n".encode()

        with serve(app) as served, served.client(timeout=60) as client:
            answers = [
                client.post("/analyze-video", files={"file": ("big.mp4", video, "video/mp4")}),
                client.post(
                    "/analyze-video", content=streamed(), headers={"content-type": MULTIPART_TYPE}
                ),
            ]
            # A small video still fits afterwards: nothing was left behind.
            small = client.post("/analyze-video", files={"file": ("ok.mp4", b"v" * 1000)})
        leftovers = sorted(p.name for p in staging.rglob("*") if p.is_file())

    for answer in answers:
        assert answer.status_code == 507, answer.text
        error = answer.json()["error"]
        assert error["code"] == "storage_full" and "TEMP_MEDIA_DIR" in error["message"]
    assert small.status_code == 202, small.text
    assert leftovers == ["source.mp4"] and len(submitted) == 1
    assert list(store.list("jobs/")) != []  # only the small job's manifest
    assert len([i for i in store.list("jobs/") if i.key.endswith("status.json")]) == 1
