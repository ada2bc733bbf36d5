"""The HTTP API with real jobs: upload, poll to the end, fetch results, download artifacts
through their signed links (the API's own /files route for the local store, the moto
server for the S3 store); the bad media; a small run of the bounded load test.

The jobs run in the daemon's real runner (lease, fenced store, the real ``run_job``) with
the session's random-weight models, as ``vidwatch run`` wires them."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bench.api_load import run_load
from tests.api.api_harness import Served, files_under, poll_status, serve
from vidwatch.api.app import create_app
from vidwatch.api.context import ApiContext
from vidwatch.api.links import SECRET_FILE, FileLinkSigner
from vidwatch.config import Settings, load_settings
from vidwatch.daemon.runner import Runner
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore
from vidwatch.r2.store import ObjectStore, StoreError

pytestmark = pytest.mark.models

JOB_TIMEOUT_S = 120


class Flow:
    def __init__(
        self, served: Served, settings: Settings, store: ObjectStore, runner: Runner
    ) -> None:
        self.served, self.settings, self.store, self.runner = served, settings, store, runner
        self.client = served.client()

    def upload(self, path: Path, **fields: str) -> str:
        with open(path, "rb") as fh:
            resp = self.client.post(
                "/analyze-video", files={"file": (path.name, fh)}, data=fields or None
            )
        assert resp.status_code == 202, resp.text
        return resp.json()["job_id"]

    def staged_files(self) -> set[str]:
        return files_under(Path(self.settings.temp_media_dir)) - {SECRET_FILE}


@pytest.fixture
def make_flow(tmp_path: Path, models, model_env) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:

        def make(store: ObjectStore | None = None, **env: str) -> Flow:
            settings = load_settings(
                {
                    **model_env,
                    "TEMP_MEDIA_DIR": str(tmp_path / "tmp_media"),
                    "LOCAL_STORE_DIR": str(tmp_path / "store"),
                    "TOON_ENABLED": "false",
                    **env,
                }
            )
            signer = FileLinkSigner.from_settings(settings)
            store = store or LocalStore(settings.local_store_dir, url_signer=signer)
            runner = Runner(settings=settings, store=store, models=models, toon=None)
            runner.start()
            stack.callback(runner.shutdown, 10.0)

            def health() -> dict[str, Any]:
                try:
                    store.check()
                    store_ok = True
                except StoreError:
                    store_ok = False
                return {"ok": store_ok and runner.alive(), "store": store_ok, **runner.health()}

            app = create_app(
                ApiContext(
                    settings=settings,
                    store=store,
                    submit=runner.submit,
                    health=health,
                    signer=signer,
                )
            )
            served = stack.enter_context(serve(app))
            flow = Flow(served, settings, store, runner)
            stack.callback(flow.client.close)
            return flow

        yield make


def _links(doc: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for frame in doc["frames"]:
        out += list(frame["images"].values())
        out += [frame[f] for f in ("json", "toon") if frame[f] is not None]
    out += [person["thumbnail"] for person in doc["people"]]
    return out


def _check_results(flow: Flow, job_id: str) -> dict[str, Any]:
    resp = flow.client.get(f"/results/{job_id}")
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    stored = json.loads(flow.store.get_bytes(keys.results_key(job_id)))
    assert doc["job_id"] == job_id and doc["video"] == stored["video"]
    assert len(doc["frames"]) == len(stored["frames"]) > 0
    for got, want in zip(doc["frames"], stored["frames"], strict=True):
        assert {k: v["key"] for k, v in got["images"].items()} == want["images"]
        assert set(got["images"]) == set(keys.IMAGE_KINDS)
        assert got["json"]["key"] == want["json"] and got["toon"] == want["toon"] is None
        assert got["objects"] == want["objects"] and got["faces"] == want["faces"]
    assert [p["thumbnail"]["key"] for p in doc["people"]] == [
        p["thumbnail"] for p in stored["people"]
    ]
    assert doc["label_segments"] == stored["label_segments"]
    for link in _links(doc):
        assert set(link) == {"key", "url"} and link["url"].startswith("http://127.0.0.1:")
    return doc


def test_upload_poll_results_and_download_through_the_files_route(make_flow, media):
    flow = make_flow()
    source = media / "cuts_h264.mp4"
    job_id = flow.upload(source)
    manifest = poll_status(flow.client, job_id, ("completed", "failed"), JOB_TIMEOUT_S)
    assert manifest["state"] == "completed", manifest["error"]
    assert manifest["source"]["origin"] == "api"
    assert manifest["source"]["filename"] == "cuts_h264.mp4"
    assert manifest["source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["cleanup"]["local_source_deleted"] is True
    assert flow.staged_files() == set()  # the default policy removed the staged copy

    doc = _check_results(flow, job_id)
    assert len(doc["scenes"]) == 6 and doc["video"]["frames"] == 280
    checked = 0
    for frame in (doc["frames"][0], doc["frames"][-1]):
        for link in [*frame["images"].values(), frame["json"]]:
            url = urlsplit(link["url"])
            assert f"{url.scheme}://{url.netloc}" == flow.served.base_url
            assert url.path == f"/files/{link['key']}"
            got = httpx.get(link["url"], timeout=30)
            assert got.status_code == 200, got.text
            assert got.content == flow.store.get_bytes(link["key"])
            checked += 1
    assert checked == 10
    image = doc["frames"][0]["images"]["det"]
    got = httpx.get(image["url"])
    assert got.headers["content-type"] == "image/jpeg" and got.content[:2] == b"\xff\xd8"
    # The astronaut and the cameraman: each thumbnail downloads through its signed link.
    assert len(doc["people"]) == 2
    for person in doc["people"]:
        got = httpx.get(person["thumbnail"]["url"], timeout=30)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.content == flow.store.get_bytes(person["thumbnail"]["key"])


def test_the_same_flow_on_the_s3_store_with_presigned_links(make_flow, media, moto_bucket):
    store = moto_bucket.store()
    flow = make_flow(store=store, **moto_bucket.env())
    job_id = flow.upload(media / "single_shot.mp4", cleanup_local_video_after_upload="false")
    manifest = poll_status(flow.client, job_id, ("completed", "failed"), JOB_TIMEOUT_S)
    assert manifest["state"] == "completed", manifest["error"]
    assert manifest["cleanup"] == {"local_source_policy": False, "local_source_deleted": False}
    assert flow.staged_files() == {f"{job_id}/input/source.mp4"}  # kept, as asked

    doc = _check_results(flow, job_id)
    endpoint = moto_bucket.server.endpoint_url
    for link in _links(doc):
        assert link["url"].startswith(f"{endpoint}/{moto_bucket.name}/{link['key']}?")
        assert "X-Amz-Signature=" in link["url"] and "X-Amz-Expires=3600" in link["url"]
    for link in doc["frames"][0]["images"].values():
        got = httpx.get(link["url"], timeout=30)
        assert got.status_code == 200 and got.content == store.get_bytes(link["key"])
    assert doc["people"] == []  # a coffee cup
    # No /files route without the local store.
    assert flow.client.get(f"/files/{doc['frames'][0]['json']['key']}").status_code == 404


def test_people_thumbnails_on_the_s3_store_are_presigned_links(make_flow, moto_bucket, tmp_path):
    from tests.pipeline.face_video import Placement, Scene, make_video

    video = tmp_path / "two.mp4"
    pair = [Placement("astronaut", 70, 200, 180), Placement("camera", 70, 440, 180)]
    make_video(video, [Scene(3, (90, 90, 90), pair)])
    store = moto_bucket.store()
    flow = make_flow(store=store, **moto_bucket.env())
    job_id = flow.upload(video)
    manifest = poll_status(flow.client, job_id, ("completed", "failed"), JOB_TIMEOUT_S)
    assert manifest["state"] == "completed", manifest["error"]
    doc = _check_results(flow, job_id)
    assert [p["person"] for p in doc["people"]] == [0, 1]
    endpoint = moto_bucket.server.endpoint_url
    for person in doc["people"]:
        link = person["thumbnail"]
        assert link["key"] == keys.person_thumbnail_key(job_id, person["person"])
        assert link["url"].startswith(f"{endpoint}/{moto_bucket.name}/{link['key']}?")
        got = httpx.get(link["url"], timeout=30)
        assert got.status_code == 200 and got.content[:3] == b"\xff\xd8\xff"
        assert store.head(link["key"]).content_type == "image/jpeg"


BAD = {
    "zero_bytes.mp4": "empty_file",
    "not_a_video.mp4": "not_a_video",
    "image_as_video.mp4": "image_not_video",
    "truncated_half.mp4": "truncated_video",
}


def test_each_bad_file_is_accepted_then_failed_with_a_clear_error(make_flow, media):
    flow = make_flow()
    assert sorted(p.name for p in (media / "bad").iterdir()) == sorted(BAD)
    jobs = {name: flow.upload(media / "bad" / name) for name in BAD}
    for name, job_id in jobs.items():
        manifest = poll_status(flow.client, job_id, ("completed", "failed"), JOB_TIMEOUT_S)
        assert manifest["state"] == "failed", (name, manifest)
        error = manifest["error"]
        assert error["code"] == BAD[name], (name, error)
        assert len(error["message"]) > 10 and "Traceback" not in error["message"]
        resp = flow.client.get(f"/results/{job_id}")
        assert resp.status_code == 409
        assert resp.json()["error"]["code"] == "job_failed"
        assert resp.json()["error"]["job_error"] == error
    # The server and the runner go on: a good video still completes.
    assert flow.client.get("/healthz").json()["ok"] is True
    good = flow.upload(media / "single_shot.mp4")
    assert (
        poll_status(flow.client, good, ("completed", "failed"), JOB_TIMEOUT_S)["state"]
        == "completed"
    )
    assert flow.runner.alive()


def test_a_small_load_while_a_job_runs_has_no_errors(make_flow, media):
    """The bench's client side, scaled down: polls from concurrent clients and concurrent
    uploads while a job runs. Counts, not timings, are asserted."""
    flow = make_flow()
    video = (media / "single_shot.mp4").read_bytes()
    job_id = flow.upload(media / "cuts_h264.mp4")
    poll_status(flow.client, job_id, ("running", "completed", "failed"), JOB_TIMEOUT_S)
    report = run_load(
        flow.served.base_url, job_id, video, polls=60, clients=6, uploads=3, timeout_s=60
    )
    assert report["errors"] == 0, report["first_errors"]
    assert report["polls"]["count"] == 60 and report["uploads"]["count"] == 3
    assert report["polls"]["p50_ms"] is not None
    for new_job in [job_id, *report["upload_job_ids"]]:
        assert (
            poll_status(flow.client, new_job, ("completed", "failed"), JOB_TIMEOUT_S)["state"]
            == "completed"
        )
