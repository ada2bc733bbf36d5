"""One analysis per content through the API and the daemon's own runner: Idempotency-Key,
duplicates answered with the earlier job's results and links, ``reanalyze=true``, and a
duplicate of a running job waiting for it instead of running beside it."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.api_harness import poll_status, serve
from vidwatch.api.app import create_app
from vidwatch.api.context import ApiContext
from vidwatch.api.links import FileLinkSigner
from vidwatch.config import load_settings
from vidwatch.daemon.runner import Runner
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

pytestmark = pytest.mark.models


@pytest.fixture
def api(tmp_path: Path, models, model_env):
    settings = load_settings(
        {
            **model_env,
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp_media"),
            "LOCAL_STORE_DIR": str(tmp_path / "store"),
            "TOON_ENABLED": "false",
            "JOB_CONCURRENCY": "2",
        }
    )
    signer = FileLinkSigner.from_settings(settings)
    store = LocalStore(settings.local_store_dir, url_signer=signer)
    runner = Runner(settings=settings, store=store, models=models, toon=None)
    runner.start()
    app = create_app(
        ApiContext(
            settings=settings,
            store=store,
            submit=runner.submit,
            health=lambda: {"ok": True},
            signer=signer,
        )
    )
    with serve(app) as served, served.client(timeout=60) as client:
        yield client, store
    runner.shutdown(5)


def _post(client: httpx.Client, path: Path, *, key: str | None = None, **fields: str):
    headers = {"Idempotency-Key": key} if key is not None else {}
    with open(path, "rb") as fh:
        return client.post(
            "/analyze-video",
            files={"file": (path.name, fh, "video/mp4")},
            data=fields or None,
            headers=headers,
        )


def _done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    doc = poll_status(client, job_id, ("completed", "failed"), 120)
    assert doc["state"] == "completed", doc.get("error")
    return doc


def test_idempotency_key_duplicates_and_reanalyze(api, media):
    client, store = api
    clip = media / "single_shot.mp4"
    first = _post(client, clip, key="upload-1")
    assert first.status_code == 202, first.text
    a = first.json()["job_id"]
    again = _post(client, clip, key="upload-1")
    assert again.status_code == 202 and again.json()["job_id"] == a
    assert again.headers["Idempotent-Replayed"] == "true"
    other = _post(client, media / "cuts_vp9.webm", key="upload-1")
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    bad_key = _post(client, clip, key="has spaces in it")
    assert bad_key.status_code == 422
    assert bad_key.json()["error"]["code"] == "invalid_idempotency_key"
    original = _done(client, a)
    assert original["duplicate_of"] is None and original["content_key"]

    b = _post(client, clip).json()["job_id"]  # the same bytes, no key: a new job
    assert b != a
    dup = _done(client, b)
    assert dup["duplicate_of"] == a and dup["content_key"] == original["content_key"]
    assert dup["results_key"] == keys.results_key(a)
    assert dup["source"]["sha256"] == original["source"]["sha256"]
    assert not store.head(keys.results_key(b))  # not analysed again
    assert store.head(dup["source"]["key"])  # its source is in the store all the same
    resp = client.get(f"/results/{b}")
    assert resp.status_code == 200, resp.text
    results = resp.json()
    stored = json.loads(store.get_bytes(keys.results_key(a)))
    assert results["job_id"] == b and results["duplicate_of"] == a
    assert results["summary"] == stored["summary"] and results["video"] == stored["video"]
    link = results["frames"][0]["images"]["original"]
    assert link["key"].startswith(keys.job_prefix(a))
    assert httpx.get(link["url"], timeout=10).status_code == 200

    c = _post(client, clip, reanalyze="true").json()["job_id"]
    fresh = _done(client, c)
    assert fresh["duplicate_of"] is None and fresh["reanalyze"] is True
    assert store.head(keys.results_key(c))
    assert _post(client, clip, reanalyze="maybe").status_code == 422


def test_a_duplicate_of_a_running_job_waits_for_it(api, media):
    client, store = api
    clip = media / "cuts_vp9.webm"
    first = _post(client, clip).json()["job_id"]
    second = _post(client, clip).json()["job_id"]  # two workers: both start at once
    docs = {j: _done(client, j) for j in (first, second)}
    dups = [j for j, d in docs.items() if d["duplicate_of"]]
    assert len(dups) == 1, docs
    (analysed,) = set(docs) - set(dups)
    assert docs[dups[0]]["duplicate_of"] == analysed
    assert store.head(keys.results_key(analysed)) and not store.head(keys.results_key(dups[0]))
    # The duplicate ended after the analysis it waited for.
    assert docs[dups[0]]["finished_at"] >= docs[analysed]["finished_at"]
    with contextlib.suppress(KeyError):
        assert docs[dups[0]]["stage"] == "done"
