"""job.completed carries the job's people with their library ids and current names."""

from __future__ import annotations

import json

from ulid import ULID

from tests.jobs.test_webhooks import SECRET, receiver, senders  # noqa: F401 - fixtures
from tests.jobs.webhook_receiver import spec_verify
from tests.library.faces import Faces, write_job
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.library import PeopleLibrary
from vidwatch.library.link import link_results
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore


def test_job_completed_names_the_people(tmp_path, receiver, senders):  # noqa: F811
    store = LocalStore(tmp_path / "store")
    library, faces = PeopleLibrary(store), Faces()
    job_id = str(ULID())
    doc = write_job(store, job_id, 2)
    link_results(library, job_id, doc, {0: faces.views("kim"), 1: faces.views("lee")})
    store.put_bytes(keys.results_key(job_id), json.dumps(doc).encode())
    kim = doc["people"][0]["library_id"]
    library.rename(kim, "Kim")
    manifest = Manifest(job_id=job_id, state="completed", origin="api", filename="k.mp4")
    write_manifest(store, manifest)
    rec = receiver()
    sender = senders(store, [rec.url("/hook")])
    sender.start()
    sender.emit("job.completed", manifest, summary={"people": 2})
    (hit,) = rec.wait("/hook", 1)
    people = spec_verify(SECRET, hit.headers, hit.body)["data"]["people"]
    assert [(p["person"], p["library_id"], p["name"]) for p in people] == [
        (0, kim, "Kim"),
        (1, doc["people"][1]["library_id"], None),
    ]
