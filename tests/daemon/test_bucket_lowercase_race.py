"""Two daemons on one bucket and an upload under a lower-case job id
(``jobs/<ulid in lower case>/input/source.mp4``): whichever sees it first normalises it and
the job runs once under its canonical id; the other must recognise the upload as taken and
write nothing, never a ``failed`` ``bad_job_key`` status.json into the lower-case folder
beside the completed job. On SeaweedFS, with the real runner and run_job (no models)."""

from __future__ import annotations

import json
import threading
import time

from vidwatch.config import load_settings
from vidwatch.daemon.runner import Runner
from vidwatch.detectors.registry import load_models
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys

from .helpers import MODELS_OFF, runner_scanner
from .service_harness import wait_until

ROUNDS = 8


def _poll_until(scanner, done: threading.Event) -> None:
    while not done.is_set():
        scanner.poll_once()
        time.sleep(0.03)


def test_two_daemons_give_a_lower_case_upload_one_outcome(tmp_path, seaweedfs_bucket, media):
    base = {
        **MODELS_OFF,
        "TOON_ENABLED": "false",
        "SAMPLE_FPS": "1",
        **seaweedfs_bucket.env(),
    }
    daemons = []
    for name in ("a", "b"):
        settings = load_settings({**base, "TEMP_MEDIA_DIR": str(tmp_path / f"tmp-{name}")})
        store = seaweedfs_bucket.store()
        runner = Runner(settings=settings, store=store, models=load_models(settings), toon=None)
        runner.start()
        daemons.append((runner, runner_scanner(settings, store, runner), store))
    store = daemons[0][2]
    video = (media / "single_shot.mp4").read_bytes()
    try:
        for _ in range(ROUNDS):
            lower = new_job_id().lower()
            job_id = lower.upper()
            source = f"jobs/{lower}/input/source.mp4"
            store.put_bytes(source, video)
            done = threading.Event()
            pollers = [
                threading.Thread(target=_poll_until, args=(scanner, done), daemon=True)
                for _, scanner, _ in daemons
            ]
            for poller in pollers:
                poller.start()
            try:
                wait_until(
                    lambda j=job_id: (
                        (store.head(keys.status_key(j)) is not None)
                        and json.loads(store.get_bytes(keys.status_key(j)))["state"]
                        in ("completed", "failed")
                    ),
                    timeout_s=120,
                    what=f"job {job_id} to end",
                )
                time.sleep(0.5)  # more polls of both after the end
            finally:
                done.set()
                for poller in pollers:
                    poller.join(10)
            for runner, _, _ in daemons:
                assert runner.wait_idle(60)
            wrong = store.head(f"jobs/{lower}/status.json")
            assert wrong is None, json.loads(store.get_bytes(f"jobs/{lower}/status.json"))
            doc = json.loads(store.get_bytes(keys.status_key(job_id)))
            assert doc["state"] == "completed", doc["error"]
            assert doc["source"]["key"] == source
            assert doc["attempts"] == 1, doc["attempt_history"]
    finally:
        for runner, scanner, s in daemons:
            scanner.stop()
            runner.shutdown(5)
            s.close()
