"""status.json's model: flat names, unknown fields kept across a rewrite, unreadable ones
refused with a clear error."""

from __future__ import annotations

import json

import pytest

from vidwatch.jobs.manifest import (
    ErrorInfo,
    Manifest,
    ManifestError,
    read_manifest,
    write_manifest,
)
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore


def test_flat_names_read_and_set_the_nested_fields():
    m = Manifest(job_id=new_job_id(), origin="inbox", filename="a.mp4", source_bytes=7)
    m.frames_done, m.frames_total, m.state = 3, 12, "running"
    m.source_key = "jobs/x/input/source.mp4"
    m.cleanup_local_source = False
    doc = m.to_json()
    assert doc["source"] == {
        "key": "jobs/x/input/source.mp4",
        "origin": "inbox",
        "filename": "a.mp4",
        "bytes": 7,
        "sha256": None,
    }
    assert doc["progress"] == {"frames_done": 3, "frames_total": 12, "percent": 25.0}
    assert doc["cleanup"]["local_source_policy"] is False
    assert doc["results_key"] is None and "summary" not in doc  # written once completed


def test_a_rewrite_keeps_fields_another_version_wrote(tmp_path):
    store = LocalStore(tmp_path)
    job_id = new_job_id()
    write_manifest(store, Manifest(job_id=job_id, origin="api", filename="a.mp4"))
    doc = json.loads(store.get_bytes(keys.status_key(job_id)))
    # A newer version adds a top-level field, a nested one and an entry with more keys.
    doc["duplicate_of"] = "01JD3AAAAAAAAAAAAAAAAAAAAA"
    doc["source"]["uploaded_by"] = "someone"
    doc["notifications"] = [{"type": "job.completed", "attempts": 1}]
    doc["warnings"] = [{"code": "rotated", "message": "m", "frame": 4}]
    store.put_bytes(keys.status_key(job_id), json.dumps(doc).encode())

    manifest = read_manifest(store, job_id)
    manifest.state, manifest.stage = "running", "analyzing"
    write_manifest(store, manifest)

    again = json.loads(store.get_bytes(keys.status_key(job_id)))
    assert again["state"] == "running"
    assert again["duplicate_of"] == "01JD3AAAAAAAAAAAAAAAAAAAAA"
    assert again["source"]["uploaded_by"] == "someone"
    assert again["notifications"] == [{"type": "job.completed", "attempts": 1}]
    assert again["warnings"] == [{"code": "rotated", "message": "m", "frame": 4}]


def test_a_completed_manifest_read_back_keeps_its_summary(tmp_path):
    store = LocalStore(tmp_path)
    doc = Manifest(job_id=new_job_id(), state="completed", stage="done").to_json()
    doc["summary"] = {
        "scenes": 2,
        "frames_analyzed": 5,
        "labels": ["cat"],
        "faces": {"frames": 1, "max_in_frame": 1},
        "people": 1,
        "duration_s": 11.2,
    }
    store.put_bytes(keys.status_key(doc["job_id"]), json.dumps(doc).encode())
    manifest = read_manifest(store, doc["job_id"])
    write_manifest(store, manifest)
    assert json.loads(store.get_bytes(keys.status_key(doc["job_id"])))["summary"] == doc["summary"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not JSON"),
        (b'{"state": "running"}', "job_id"),
        (b'{"job_id": "x", "state": "half-done"}', "state"),
        (b'{"job_id": "x", "progress": {"frames_done": "many"}}', "frames_done"),
    ],
)
def test_an_unreadable_manifest_is_refused_with_a_clear_error(tmp_path, body, words):
    store = LocalStore(tmp_path)
    job_id = new_job_id()
    store.put_bytes(keys.status_key(job_id), body)
    with pytest.raises(ManifestError, match=words) as err:
        read_manifest(store, job_id)
    assert isinstance(err.value, ValueError)  # callers that skip unreadable manifests


def test_assignments_are_checked():
    manifest = Manifest(job_id=new_job_id())
    with pytest.raises(ValueError):
        manifest.state = "done"  # a stage, not a state
    manifest.error = {"code": "invalid_video", "message": "m"}
    assert manifest.error == ErrorInfo(code="invalid_video", message="m")
