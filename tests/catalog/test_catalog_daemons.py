"""The catalog in real daemons on one SeaweedFS bucket, with real jobs: the shared cut
videos analysed with a YOLO calibrated on the test media (random weights whose labels
differ from scene to scene; results.json is the truth of what was seen where).

- a job that ends on daemon A is in A's catalog when it ends;
- a job that ends on daemon B is found by A's ``/search`` within BUCKET_POLL_S and a few
  seconds (A's scanner lists the bucket anyway; the catalog rides on that listing);
- a label finds the scenes that show it and no other;
- A stopped, its catalog file deleted, A started: rebuilt in the background, /healthz says
  when it is complete, and every answer is the same."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bench.equivalence import calibrated_yolo
from tests.daemon.service_harness import daemon_env, daemons, read_status, wait_until
from vidwatch.pipeline.documents import FrameEntry
from vidwatch.pipeline.views import frame_labels

pytestmark = pytest.mark.models

__all__ = ["daemons"]  # the fixture, used below

POLL_S = 2.0
FOUND_WITHIN_S = POLL_S + 4.0
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def calibrated_detect(tmp_path_factory, media) -> Path:
    import av

    frames: list[np.ndarray] = []
    for name in ("cuts_h264.mp4", "cuts_vp9.webm"):
        with av.open(str(media / name)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % 50 == 0:
                    frames.append(frame.to_ndarray(format="bgr24"))
    folder = tmp_path_factory.mktemp("calibrated")
    return calibrated_yolo("yolo11n.yaml", folder / "detect.pt", frames)


def _upload(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        resp = client.post("/analyze-video", files={"file": (path.name, f, "video/mp4")})
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


def _hits(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    resp = client.get("/search", params={"limit": 500, **params}, headers=JSON)
    assert resp.status_code == 200, resp.text
    return resp.json()["hits"]


def _answers(client: httpx.Client, labels: list[str], jobs: list[str]) -> dict[str, Any]:
    """What A says, links aside (a presigned URL carries its own time)."""

    def plain(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**h, "thumbnail": (h["thumbnail"] or "").split("?")[0]} for h in hits]

    listed = client.get("/jobs", headers=JSON).json()["jobs"]
    return {
        "all": plain(_hits(client)),
        "words": plain(_hits(client, q="cuts")),
        "labels": {label: plain(_hits(client, label=label)) for label in labels},
        "jobs": [(j["job_id"], j["state"], j["file_name"], j["scenes"]) for j in listed],
        "per_job": {job: plain(_hits(client, job=job)) for job in jobs},
    }


def test_two_daemons_one_bucket_found_within_the_poll_and_rebuilt_the_same(
    seaweedfs_bucket, daemons, tmp_path, model_env, media, calibrated_detect
) -> None:
    def env(name: str) -> dict[str, str]:
        return daemon_env(
            tmp_path / name,
            model_env,
            **seaweedfs_bucket.env(),
            DETECT_MODEL=str(calibrated_detect),
            SEGMENT_MODEL="none",
            FACES_ENABLED="false",
            TORCH_THREADS="1",
            HTTP_ENABLED="true",
            HTTP_PORT="0",
            BUCKET_POLL_S=str(POLL_S),
            BUCKET_FULL_SWEEP_S="0",
        )

    a = daemons(tmp_path / "a", env("a"), name="a").start()
    b = daemons(tmp_path / "b", env("b"), name="b").start()
    a.wait_ready()
    b.wait_ready()
    catalog_file = tmp_path / "a" / "catalog.sqlite3"
    assert catalog_file.is_file()  # beside A's (unused) local store folder
    store = seaweedfs_bucket.store()
    api_a = httpx.Client(base_url=f"http://127.0.0.1:{a.wait_for('http_listening')['port']}")
    api_b = httpx.Client(base_url=f"http://127.0.0.1:{b.wait_for('http_listening')['port']}")
    try:
        # A job that ends here is in the catalog when it ends.
        own = _upload(api_a, media / "cuts_vp9.webm")
        wait_until(
            lambda: (read_status(store, own) or {}).get("state") == "completed",
            timeout_s=120,
            what="A's job to complete",
            daemon=a,
        )
        wait_until(lambda: _hits(api_a, job=own), timeout_s=1.0, what="A's job in A's catalog")

        # A job that ends on B: found by A within the poll interval and a few seconds.
        theirs = _upload(api_b, media / "cuts_h264.mp4")
        wait_until(
            lambda: (read_status(store, theirs) or {}).get("state") == "completed",
            timeout_s=120,
            interval_s=0.02,
            what="B's job to complete",
            daemon=b,
        )
        ended = time.monotonic()
        found = wait_until(
            lambda: _hits(api_a, job=theirs),
            timeout_s=FOUND_WITHIN_S,
            interval_s=0.1,
            what="B's job in A's catalog",
            daemon=a,
        )
        took_s = time.monotonic() - ended
        assert not a.find("job_stage", job_id=theirs, stage="analyzing")  # B ran it, not A
        assert [h["scene"] for h in found] == list(range(6))
        assert all(h["file_name"] == "cuts_h264.mp4" for h in found)

        # A label finds the scenes that show it, and no other.
        results = store.get_bytes(f"jobs/{theirs}/analysis/results.json")
        import json

        doc = json.loads(results)
        truth: dict[str, set[int]] = {}
        for frame in doc["frames"]:
            for label in frame_labels(FrameEntry.model_validate(frame)):
                truth.setdefault(label, set()).add(frame["scene"])
        assert any(0 < len(seen) < 6 for seen in truth.values()), truth
        for label, seen in truth.items():
            scenes = [h["scene"] for h in _hits(api_a, label=label, job=theirs)]
            assert scenes == sorted(seen), label
        hit = found[0]
        assert hit["page"] == f"/jobs/{theirs}?t=0" and hit["thumbnail"].startswith("http")
        assert httpx.get(hit["thumbnail"]).status_code == 200

        health = api_a.get("/healthz").json()
        assert health["catalog_complete"] is True and health["catalog_jobs"] == 2
        before = _answers(api_a, sorted(truth), [own, theirs])
        assert len(before["all"]) == 9 and before["words"] == before["all"]

        # Stop A, delete its catalog, start it again: the same answers.
        a.signal(signal.SIGTERM)
        assert a.wait_exit(60) == 0
        for suffix in ("", "-wal", "-shm"):
            Path(f"{catalog_file}{suffix}").unlink(missing_ok=True)
        a2 = daemons(tmp_path / "a", env("a"), name="a2").start()
        a2.wait_ready()
        api_a2 = httpx.Client(base_url=f"http://127.0.0.1:{a2.wait_for('http_listening')['port']}")
        try:
            wait_until(
                lambda: api_a2.get("/healthz").json().get("catalog_complete"),
                timeout_s=30,
                what="the rebuilt catalog",
                daemon=a2,
            )
            assert a2.wait_for("catalog_rebuilt")["jobs"] == 2
            assert _answers(api_a2, sorted(truth), [own, theirs]) == before
        finally:
            api_a2.close()
        print(f"B's job found by A {took_s:.2f} s after it ended (BUCKET_POLL_S={POLL_S:g})")
    finally:
        api_a.close()
        api_b.close()
        store.close()
