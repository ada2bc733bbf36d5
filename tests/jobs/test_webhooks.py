"""Webhooks: the pure retry decisions with fixed times, and the sender against a real HTTP
receiver on 127.0.0.1 and a local store (outbox, claims, status.json, restarts)."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook

from vidwatch.config import ConfigError, load_settings
from vidwatch.jobs.manifest import Manifest, read_manifest, write_manifest
from vidwatch.jobs.webhooks import (
    MAX_RETRY_DELAY_S,
    OUTBOX_PREFIX,
    Outcome,
    WebhookSender,
    decide,
    endpoint_label,
    retry_delay_s,
)
from vidwatch.r2.local import LocalStore
from vidwatch.r2.store import TransientStoreError

from .webhook_receiver import BlackHole, Receiver, free_port, new_secret, spec_verify

SECRET = new_secret()
JOB = "01JD3Q5V8W9X0Y1Z2A3B4C5D6E"


# --- pure decisions ----------------------------------------------------------------------------
def test_retry_delays_double_from_the_base_with_jitter_and_stop_at_an_hour():
    assert [retry_delay_s(n, 5.0, 0.5) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert retry_delay_s(1, 5.0, 0.0) == pytest.approx(4.0)
    assert retry_delay_s(1, 5.0, 0.999999) == pytest.approx(6.0, rel=1e-5)
    assert retry_delay_s(40, 5.0, 0.999) == MAX_RETRY_DELAY_S


def _decide(status=None, error=None, *, attempts=1, now=1000.0, created=1000.0):
    return decide(
        created_at=created,
        attempts=attempts,
        outcome=Outcome(status, error),
        now=now,
        base_s=5.0,
        max_age_s=24 * 3600.0,
        rand=0.5,
    )


def test_decisions_by_answer_and_age():
    assert _decide(200).state == "delivered" and _decide(204).state == "delivered"
    assert _decide(410).state == "gone"
    for status, error in ((500, None), (302, None), (404, None), (None, "refused")):
        decision = _decide(status, error, attempts=2)
        assert decision.state == "pending" and decision.next_attempt_at == 1010.0
    late = _decide(500, attempts=9, now=1000.0 + 24 * 3600 - 60)
    assert late.next_attempt_at == 1000.0 + 24 * 3600  # a last try at the age limit
    assert _decide(500, attempts=10, now=1000.0 + 24 * 3600).state == "expired"
    assert Outcome(302).describe() == "HTTP 302 (redirects are not followed)"


def test_endpoint_labels_drop_credentials_and_query():
    assert endpoint_label("https://user:pw@hooks.example:8443/in?token=abc#x") == (
        "https://hooks.example:8443/in"
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"WEBHOOK_URLS": "ftp://127.0.0.1/x", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URLS"),
        ({"WEBHOOK_URLS": "127.0.0.1:9/x", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URLS"),
        ({"WEBHOOK_URLS": "http://127.0.0.1/x"}, "WEBHOOK_SECRET"),
        (
            {"WEBHOOK_URLS": "http://127.0.0.1/x", "WEBHOOK_SECRET": "whsec_c2hvcnQ="},
            "WEBHOOK_SECRET",
        ),
        (
            {"WEBHOOK_URLS": "http://127.0.0.1/x", "WEBHOOK_SECRET": "topsecretvalue"},
            "WEBHOOK_SECRET",
        ),
        ({"WEBHOOK_TIMEOUT_S": "0"}, "WEBHOOK_TIMEOUT_S"),
    ],
)
def test_bad_webhook_settings_stop_the_start_in_one_line(env, names):
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    message = str(err.value)
    assert names in message and "\n" not in message
    assert "topsecretvalue" not in message and "c2hvcnQ" not in message


# --- the sender --------------------------------------------------------------------------------
@pytest.fixture
def receiver():
    made = []

    def make(scripts=None, port=0):
        rec = Receiver(scripts, port=port).start()
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close()


@pytest.fixture
def senders():
    made = []

    def make(store, urls, *, owner="a", timeout_s=2.0, base_s=0.2, clock=None, **kw):
        settings = load_settings(
            {
                "WEBHOOK_URLS": ",".join(urls),
                "WEBHOOK_SECRET": SECRET,
                "WEBHOOK_TIMEOUT_S": str(timeout_s),
                "WEBHOOK_RETRY_BASE_S": str(base_s),
                **kw,
            }
        )
        sender = WebhookSender(
            settings, store, owner=owner, scan_interval_s=0.2, clock=clock or time.time
        )
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.stop()


def _job(store, state="completed", **kw) -> Manifest:
    manifest = Manifest(
        job_id=JOB, state=state, origin="inbox", filename="a.mp4", source_sha256="ab" * 32, **kw
    )
    write_manifest(store, manifest)
    return manifest


def _outbox(store) -> list[str]:
    return [i.key for i in store.list(OUTBOX_PREFIX)]


def _wait(check, timeout_s=20.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _notifications(store):
    return (read_manifest(store, JOB) or Manifest(job_id=JOB)).notifications


def test_events_are_signed_as_the_spec_says(tmp_path, receiver, senders):
    rec = receiver()
    store = LocalStore(tmp_path / "store")
    sender = senders(store, [rec.url("/hook")])
    sender.start()
    manifest = _job(store)
    summary = {"labels": {"person": {"frames": 1}}, "faces": {"frames": 0}, "people": 0}
    sender.emit("job.completed", manifest, summary=summary)
    (hit,) = rec.wait("/hook", 1)
    doc = spec_verify(SECRET, hit.headers, hit.body)
    assert Webhook(SECRET).verify(hit.body, hit.headers) == doc  # the package agrees
    assert hit.headers["webhook-id"].startswith("msg_")
    assert hit.headers["content-type"] == "application/json"
    assert doc["type"] == "job.completed" and doc["timestamp"].endswith("Z")
    data = doc["data"]
    assert data["job_id"] == JOB and data["state"] == "completed" and data["origin"] == "inbox"
    assert data["filename"] == "a.mp4" and data["source_sha256"] == "ab" * 32
    assert data["summary"] == summary and data["duplicate_of"] is None
    assert data["results_key"] == f"jobs/{JOB}/analysis/results.json"
    with pytest.raises(AssertionError):
        spec_verify(new_secret().replace("A", "B", 1) + "x", hit.headers, hit.body)
    with pytest.raises(AssertionError):
        spec_verify(SECRET, hit.headers, hit.body.replace(b"a.mp4", b"b.mp4"))
    _wait(lambda: not _outbox(store), what="outbox emptied")
    (entry,) = _wait(lambda: _notifications(store), what="status.json notifications")
    assert entry["type"] == "job.completed" and entry["attempts"] == 1
    assert entry["state"] == "delivered" and entry["delivered_at"] and entry["last_error"] is None
    assert entry["endpoint"] == rec.url("/hook")


def test_an_endpoint_answering_500_twice_gets_the_event_on_the_third_try(
    tmp_path, receiver, senders
):
    rec = receiver({"/flaky": [500, 500, 200]})
    store = LocalStore(tmp_path / "store")
    sender = senders(store, [rec.url("/flaky")])
    sender.start()
    sender.emit("job.failed", _job(store, "failed", error={"code": "not_a_video", "message": "x"}))
    hits = rec.wait("/flaky", 3)
    assert [h.status for h in hits] == [500, 500, 200]
    assert len({h.headers["webhook-id"] for h in hits}) == 1  # the same id every time
    assert len({h.body for h in hits}) == 1
    for hit in hits:
        spec_verify(SECRET, hit.headers, hit.body)
    assert hits[0].json["data"]["error"] == {"code": "not_a_video", "message": "x"}
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.3  # 0.2 s then 0.4 s, jitter within 20 %
    _wait(lambda: not _outbox(store), what="outbox emptied")
    (entry,) = _wait(
        lambda: [e for e in _notifications(store) if e["state"] == "delivered"],
        what="delivered entry",
    )
    assert entry["attempts"] == 3 and entry["last_error"] is None


def test_410_stops_that_endpoint_and_another_endpoint_still_gets_it(tmp_path, receiver, senders):
    rec = receiver({"/gone": [410], "/ok": [200]})
    store = LocalStore(tmp_path / "store")
    sender = senders(store, [rec.url("/gone"), rec.url("/ok")])
    sender.start()
    sender.emit("job.queued", _job(store, "queued"))
    rec.wait("/gone", 1)
    rec.wait("/ok", 1)
    _wait(lambda: not _outbox(store), what="outbox emptied")
    time.sleep(0.6)
    assert len(rec.at("/gone")) == 1
    states = _wait(
        lambda: (
            {e["endpoint"]: e["state"] for e in _notifications(store)}
            if len(_notifications(store)) == 2
            else None
        ),
        what="two entries",
    )
    assert states == {rec.url("/gone"): "gone", rec.url("/ok"): "delivered"}


def test_bad_endpoints_are_retried_without_blocking_emit(tmp_path, receiver, senders):
    """Refused, never connecting, answering after 60 s, redirecting: emit returns at once,
    each failure is recorded with its reason, and a good endpoint is served meanwhile."""
    rec = receiver({"/slow": ["slow"], "/redirect": ["redirect"], "/ok": [200]})
    hole = BlackHole()
    try:
        store = LocalStore(tmp_path / "store")
        urls = {
            "refused": f"http://127.0.0.1:{free_port()}/x",
            "unreachable": hole.url("/x"),
            "slow": rec.url("/slow"),
            "redirect": rec.url("/redirect"),
            "ok": rec.url("/ok"),
        }
        sender = senders(store, list(urls.values()), timeout_s=0.5, base_s=0.3)
        sender.start()
        started = time.monotonic()
        for n in range(3):
            sender.emit("job.started", _job(store, "running", attempts=n + 1))
        assert time.monotonic() - started < 1.0
        rec.wait("/ok", 3, timeout_s=5)
        assert time.monotonic() - started < 5.0

        def errors():
            found = {
                e["endpoint"]: e["last_error"]
                for e in _notifications(store)
                if e["state"] == "pending" and e["attempts"] >= 2
            }
            return found if len(found) == 4 else None

        errors = _wait(errors, what="two failed attempts at each bad endpoint")
        assert "cannot connect" in errors[endpoint_label(urls["refused"])]
        assert "WEBHOOK_TIMEOUT_S" in errors[endpoint_label(urls["unreachable"])]
        assert "WEBHOOK_TIMEOUT_S" in errors[endpoint_label(urls["slow"])]
        assert "redirects are not followed" in errors[endpoint_label(urls["redirect"])]
        assert rec.at("/redirected") == []
        assert len(_outbox(store)) == 4 * 3  # three events, pending at four endpoints
    finally:
        hole.close()


def test_pending_deliveries_resume_in_a_new_sender_with_the_same_id(tmp_path, receiver, senders):
    """Endpoint down while the event is recorded; the sender stops (a daemon restart);
    the endpoint comes up; a new sender (another owner) delivers the recorded event."""
    port = free_port()
    store = LocalStore(tmp_path / "store")
    first = senders(store, [f"http://127.0.0.1:{port}/hook"], owner="first")
    first.start()
    first.emit("job.completed", _job(store))
    _wait(lambda: any(e["attempts"] >= 1 for e in _notifications(store)), what="a failed try")
    first.stop()
    (key,) = _outbox(store)
    event_id = json.loads(store.get_bytes(key))["event_id"]
    rec = receiver(port=port)
    second = senders(store, [f"http://127.0.0.1:{port}/hook"], owner="second")
    second.start()
    (hit,) = rec.wait("/hook", 1)
    assert hit.headers["webhook-id"] == event_id
    spec_verify(SECRET, hit.headers, hit.body)
    _wait(lambda: not _outbox(store), what="outbox emptied")


def test_two_senders_on_one_store_deliver_each_event_once(tmp_path, receiver, senders):
    rec = receiver({"/hook": [200]})
    store = LocalStore(tmp_path / "store")
    a = senders(store, [rec.url("/hook")], owner="a")
    b = senders(store, [rec.url("/hook")], owner="b")
    a.start()
    b.start()
    for n in range(10):
        (a if n % 2 else b).emit("job.started", _job(store, "running", attempts=n + 1))
    _wait(
        lambda: not _outbox(store) and len(rec.at("/hook")) >= 10,
        timeout_s=60,
        what=lambda: (
            f"all delivered: {len(rec.at('/hook'))} hits, outbox "
            + str([json.loads(store.get_bytes(k)) for k in _outbox(store)])[:3000]
        ),
    )
    time.sleep(0.5)
    ids = [h.headers["webhook-id"] for h in rec.at("/hook")]
    assert len(ids) == 10 and len(set(ids)) == 10


@pytest.mark.parametrize(
    "error",
    [
        TransientStoreError("store down"),
        # not a StoreError: the local store once let this through when another sender's
        # delete pruned the emptied outbox/ folder mid-write, and the event was lost
        FileNotFoundError(2, "No such file or directory"),
    ],
    ids=["store_error", "os_error"],
)
def test_an_outbox_write_that_fails_is_kept_and_written_later(tmp_path, receiver, senders, error):
    rec = receiver()
    store = LocalStore(tmp_path / "store")
    sender = senders(store, [rec.url("/hook")])
    real_put = store.put_bytes
    calls = {"n": 0}

    def flaky_put(key, data, **kw):
        if key.startswith(OUTBOX_PREFIX) and calls["n"] == 0:
            calls["n"] += 1
            raise error
        return real_put(key, data, **kw)

    store.put_bytes = flaky_put  # type: ignore[method-assign]
    sender.start()
    sender.emit("job.completed", _job(store))  # does not raise
    rec.wait("/hook", 1, timeout_s=5)


def test_a_delivered_event_leaves_the_outbox_only_once_status_json_lists_it(
    tmp_path, receiver, senders
):
    """Issue 21, point 4: a daemon that dies between a delivery and its status.json write
    (kill -9) leaves the record in the outbox; another daemon delivers it again with the same
    webhook-id (at least once) and lists it, so no delivered event is missing from
    ``notifications``. The first sender's threads are not started: the test takes its steps
    one at a time, to stop where a crash would."""
    import httpx

    rec = receiver()
    store = LocalStore(tmp_path / "store")
    first = senders(store, [rec.url("/hook")], owner="first")
    first._client = httpx.Client(timeout=2.0)
    first.emit("job.started", _job(store, "running"))
    (key,) = _outbox(store)
    assert first.attempt(key) == "delivered"
    (hit,) = rec.wait("/hook", 1)
    assert _outbox(store) == [key], "deleted before status.json listed it"
    assert _notifications(store) == []
    first._client.close()  # the crash: nothing more from the first daemon

    later = time.time() + 120  # past the first daemon's claim
    second = senders(store, [rec.url("/hook")], owner="second", clock=lambda: later)
    second.start()
    again = rec.wait("/hook", 2)[1]
    assert again.headers["webhook-id"] == hit.headers["webhook-id"]
    _wait(lambda: not _outbox(store), what="outbox emptied")
    (entry,) = _notifications(store)
    assert entry["event_id"] == hit.headers["webhook-id"] and entry["state"] == "delivered"
