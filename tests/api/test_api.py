"""The HTTP API against a real uvicorn on 127.0.0.1, without models: uploads, limits,
hostile names, ids, results links, signed files, auth, health, metrics, CORS.

Uploads go to the daemon's real runner with its workers not started, so every job the API
hands over stays in the runner's queue to be looked at (``Runner.queued()``), and a full
queue is the runner's own QueueFull; tests/api/test_api_flow.py runs real jobs."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from tests.api.api_harness import (
    BOUNDARY,
    MULTIPART_TYPE,
    Served,
    files_under,
    multipart_body,
    part_header,
    raw_connect,
    read_response,
    request_head,
    serve,
    wait_for,
)
from vidwatch.api.app import create_app
from vidwatch.api.context import ApiContext
from vidwatch.api.links import SECRET_FILE, FileLinkSigner, load_signing_secret
from vidwatch.api.upload import ENVELOPE_ALLOWANCE, sanitize_filename, sniff_ext
from vidwatch.config import Settings, load_settings
from vidwatch.daemon.runner import Runner
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import JobSpec, new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore
from vidwatch.r2.signing import signed_file_url
from vidwatch.r2.store import TransientStoreError

TOKEN = "test-token-5f1c"


class Api:
    def __init__(
        self, served: Served, settings: Settings, store: LocalStore, runner: Runner
    ) -> None:
        self.served = served
        self.settings = settings
        self.store = store
        self.runner = runner
        self.client = served.client()

    @property
    def submitted(self) -> list[JobSpec]:
        """The jobs the API handed to the runner (which runs none here)."""
        return self.runner.queued()

    @property
    def staging(self) -> Path:
        return Path(self.settings.temp_media_dir)

    def staged_files(self) -> set[str]:
        return files_under(self.staging) - {SECRET_FILE}

    def job_keys(self) -> set[str]:
        return {info.key for info in self.store.list("jobs/")}

    def upload(self, data: bytes, filename: str = "clip.mp4", **fields: str) -> httpx.Response:
        return self.client.post(
            "/analyze-video", files={"file": (filename, data)}, data=fields or None
        )


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:

        def make(
            *,
            health=None,
            store: type[LocalStore] | None = None,
            app_kwargs: dict | None = None,
            **env: Any,
        ) -> Api:
            values = {
                "TEMP_MEDIA_DIR": str(tmp_path / "tmp_media"),
                "LOCAL_STORE_DIR": str(tmp_path / "store"),
                "TOON_ENABLED": "false",
            }
            values.update({k.upper(): str(v) for k, v in env.items()})
            settings = load_settings(values)
            signer = FileLinkSigner.from_settings(settings)
            store = (store or LocalStore)(settings.local_store_dir, url_signer=signer)
            runner = Runner(settings=settings, store=store, models=None, toon=None)
            app = create_app(
                ApiContext(
                    settings=settings,
                    store=store,
                    submit=runner.submit,
                    health=health or (lambda: {"ok": True}),
                    signer=signer,
                    **(app_kwargs or {}),
                )
            )
            served = stack.enter_context(serve(app))
            api = Api(served, settings, store, runner)
            stack.callback(api.client.close)
            return api

        yield make


@pytest.fixture
def api(make_api) -> Api:
    return make_api()


@pytest.fixture(scope="module")
def video(media) -> bytes:
    return (media / "single_shot.mp4").read_bytes()


# --- upload ---------------------------------------------------------------------------------
def test_upload_stages_the_video_writes_a_queued_manifest_and_submits(api, video):
    resp = api.upload(video, "holiday.mp4")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    job_id = body["job_id"]
    assert keys.is_job_id(job_id)
    assert body["state"] == "queued" and body["bytes"] == len(video)
    assert body["filename"] == "holiday.mp4"
    assert body["status_url"] == f"{api.served.base_url}/status/{job_id}"
    assert body["results_url"] == f"{api.served.base_url}/results/{job_id}"
    assert resp.headers["location"] == body["status_url"]

    staged = api.staging / job_id / "input" / "source.mp4"
    assert api.staged_files() == {f"{job_id}/input/source.mp4"}
    assert staged.read_bytes() == video
    [spec] = api.submitted
    assert (spec.job_id, spec.staged_source, spec.origin) == (job_id, staged, "api")
    assert spec.filename == "holiday.mp4" and spec.cleanup_override is None

    status = api.client.get(f"/status/{job_id}")
    assert status.status_code == 200
    manifest = status.json()
    assert manifest["state"] == "queued" and manifest["job_id"] == job_id
    assert manifest["source"]["origin"] == "api"
    assert manifest["source"]["filename"] == "holiday.mp4"
    assert manifest["source"]["bytes"] == len(video)
    assert manifest["cleanup"]["local_source_policy"] is True  # the default
    assert manifest == json.loads(api.store.get_bytes(keys.status_key(job_id)))


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), ("FALSE", False)])
def test_cleanup_field_overrides_the_policy(api, video, value, expected):
    resp = api.upload(video, cleanup_local_video_after_upload=value)
    assert resp.status_code == 202, resp.text
    [spec] = api.submitted
    assert spec.cleanup_override is expected
    manifest = api.client.get(f"/status/{spec.job_id}").json()
    assert manifest["cleanup"]["local_source_policy"] is expected


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"cleanup_local_video_after_upload": "yes"}, "invalid_field"),
        ({"cleanup_local_video_after_upload": ""}, "invalid_field"),
        ({"cleanup_local_video_after_upload": "1"}, "invalid_field"),
        ({"cleanup": "false"}, "unknown_field"),
    ],
)
def test_a_bad_form_field_is_422_and_leaves_nothing(api, video, fields, code):
    resp = api.upload(video, **fields)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and "cleanup" in error["message"]
    assert error["request_id"] == resp.headers["x-request-id"]
    assert api.staged_files() == set() and not list(api.staging.glob("0*"))
    assert api.job_keys() == set() and api.submitted == []


def test_the_field_may_come_after_the_file(api, video):
    body = part_header("file", b"late.mp4") + video + b"\r\n"
    body += part_header("cleanup_local_video_after_upload") + b"false\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    resp = api.client.post("/analyze-video", content=body, headers={"content-type": MULTIPART_TYPE})
    assert resp.status_code == 202, resp.text
    assert api.submitted[0].cleanup_override is False


@pytest.mark.parametrize(
    "content, ctype, status, code",
    [
        (b"just bytes", "application/octet-stream", 415, "unsupported_media_type"),
        (
            part_header("other") + b"x\r\n" + f"--{BOUNDARY}--\r\n".encode(),
            MULTIPART_TYPE,
            422,
            "unknown_field",
        ),
        (f"--{BOUNDARY}--\r\n".encode(), MULTIPART_TYPE, 422, "missing_file"),
        (
            part_header("file", b"cut.mp4") + b"\0" * 5000,
            MULTIPART_TYPE,
            400,
            "malformed_multipart",
        ),
        (b"garbage without any boundary", MULTIPART_TYPE, 400, "malformed_multipart"),
    ],
)
def test_malformed_uploads_get_a_clear_4xx_and_leave_nothing(api, content, ctype, status, code):
    resp = api.client.post("/analyze-video", content=content, headers={"content-type": ctype})
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    assert api.staged_files() == set() and not list(api.staging.glob("0*"))
    assert api.job_keys() == set() and api.submitted == []


# --- size limit -------------------------------------------------------------------------------
LIMIT = 200_000


def test_over_the_limit_with_a_content_length_is_413_at_once(make_api):
    api = make_api(max_upload_bytes=LIMIT)
    resp = api.upload(os.urandom(LIMIT + ENVELOPE_ALLOWANCE + 1))
    assert resp.status_code == 413, resp.text
    error = resp.json()["error"]
    assert error["code"] == "upload_too_large" and f"MAX_UPLOAD_BYTES={LIMIT}" in error["message"]
    assert api.staged_files() == set() and not list(api.staging.glob("0*"))
    assert api.job_keys() == set() and api.submitted == []
    assert api.client.get("/healthz").status_code == 200  # the connection and server go on
    with raw_connect(api.served.port) as sock:  # the answer needs no byte of the body
        sock.sendall(
            request_head(
                "/analyze-video", {"Content-Type": MULTIPART_TYPE, "Content-Length": str(10**12)}
            )
        )
        status, body = read_response(sock)
    assert status == 413 and body["error"]["code"] == "upload_too_large"
    assert api.staged_files() == set() and not list(api.staging.glob("0*"))


def test_a_video_of_exactly_the_limit_is_accepted_one_byte_more_is_not(make_api):
    api = make_api(max_upload_bytes=LIMIT)
    assert api.upload(b"\1" * LIMIT).status_code == 202
    resp = api.upload(b"\1" * (LIMIT + 1))
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "upload_too_large"
    assert len(api.submitted) == 1


def test_a_chunked_upload_over_the_limit_is_413_while_it_streams(make_api):
    api = make_api(max_upload_bytes=LIMIT)

    def body() -> Iterator[bytes]:
        yield part_header("file", b"big.mp4")
        for _ in range(40):
            yield b"\0" * 65536
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    resp = api.client.post(
        "/analyze-video", content=body(), headers={"content-type": MULTIPART_TYPE}
    )
    assert resp.status_code == 413, resp.text
    assert api.staged_files() == set() and not list(api.staging.glob("0*"))
    assert api.submitted == []


def test_the_413_comes_before_the_body_ends(make_api):
    """A raw client sends a chunked body past the limit and never finishes it: the answer
    arrives anyway, so the server stopped reading, not the client writing."""
    api = make_api(max_upload_bytes=LIMIT)
    with raw_connect(api.served.port) as sock:
        sock.sendall(
            request_head(
                "/analyze-video", {"Content-Type": MULTIPART_TYPE, "Transfer-Encoding": "chunked"}
            )
        )
        payload = part_header("file", b"big.mp4") + b"\0" * (LIMIT + ENVELOPE_ALLOWANCE)
        sock.sendall(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        status, body = read_response(sock)  # no terminating chunk was sent
    assert status == 413 and body["error"]["code"] == "upload_too_large"
    assert api.staged_files() == set() and api.submitted == []


def test_a_client_that_disconnects_mid_upload_leaves_no_job_and_no_file(api):
    total = 8 * 1024 * 1024
    with raw_connect(api.served.port) as sock:
        head = part_header("file", b"partial.mp4")
        sock.sendall(
            request_head(
                "/analyze-video", {"Content-Type": MULTIPART_TYPE, "Content-Length": str(total)}
            )
        )
        sock.sendall(head + b"\0" * (3 * 1024 * 1024))

        def partial_on_disk() -> bool:
            try:
                return any(
                    p.stat().st_size >= 1024 * 1024
                    for p in api.staging.glob("*/input/upload.partial")
                )
            except FileNotFoundError:
                return False

        wait_for(partial_on_disk, 10, "the upload to reach the staging folder")
    wait_for(
        lambda: api.staged_files() == set() and not list(api.staging.glob("0*")),
        10,
        "the staging folder to be removed",
    )
    assert api.job_keys() == set() and api.submitted == []
    assert api.client.get("/healthz").status_code == 200


def test_a_stalled_upload_is_dropped_with_408(make_api):
    api = make_api(app_kwargs={"upload_idle_timeout_s": 0.5})
    with raw_connect(api.served.port) as sock:
        sock.sendall(
            request_head(
                "/analyze-video", {"Content-Type": MULTIPART_TYPE, "Content-Length": "1000000"}
            )
        )
        sock.sendall(part_header("file", b"slow.mp4") + b"\0" * 1000)
        status, body = read_response(sock)
    assert status == 408 and body["error"]["code"] == "upload_timeout"
    assert api.staged_files() == set() and not list(api.staging.glob("0*"))
    assert api.submitted == []


# --- names and extensions ---------------------------------------------------------------------
HOSTILE_NAMES = [
    (b"../../etc/passwd", "passwd"),
    (b"..\\..\\Windows\\evil.mp4", "evil.mp4"),
    (b"/etc/cron.d/job.mp4", "job.mp4"),
    (b"a\x00b.mp4", "ab.mp4"),
    (b"name\x00/../../x.mp4", "x.mp4"),
    (b"A" * 296 + b".mp4", "A" * 251 + ".mp4"),
    (b"..", None),
    (b"", None),
]


@pytest.mark.parametrize(
    "raw_name, shown",
    HOSTILE_NAMES,
    ids=[
        "dotdot",
        "backslash",
        "absolute",
        "nul",
        "nul-dotdot",
        "300-chars",
        "only-dotdot",
        "empty",
    ],
)
def test_a_hostile_file_name_cannot_write_outside_its_staging_folder(
    api, video, tmp_path, raw_name, shown
):
    before = files_under(tmp_path)
    resp = api.client.post(
        "/analyze-video",
        content=multipart_body(video, raw_name),
        headers={"content-type": MULTIPART_TYPE},
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    # The staged file is always source.<ext> in the job's own folder; mp4 is sniffed
    # where the name has no usable extension.
    assert api.staged_files() == {f"{job_id}/input/source.mp4"}
    new = files_under(tmp_path) - before
    assert new <= {
        f"tmp_media/{job_id}/input/source.mp4",
        f"store/jobs/{job_id}/status.json",
        f"store/.meta/jobs/{job_id}/status.json.json",
        f"store/pending/{job_id}",  # the queued job's marker
        f"store/.meta/pending/{job_id}.json",
        f"tmp_media/{SECRET_FILE}",
    }
    assert not (tmp_path.parent / "etc").exists()
    manifest = api.client.get(f"/status/{job_id}").json()
    assert manifest["source"]["filename"] == shown
    assert resp.json()["filename"] == shown


def test_sanitize_filename_rules():
    assert sanitize_filename("dir/sub/clip.MP4") == "clip.MP4"
    assert sanitize_filename("C:\\Users\\me\\clip.mov") == "clip.mov"
    assert sanitize_filename("tab\there\r\n.mp4") == "tabhere.mp4"
    assert sanitize_filename("\u202egpj.mp4") == "gpj.mp4"  # no bidi override
    assert sanitize_filename("x" * 400) == "x" * 255
    assert sanitize_filename(None) is None and sanitize_filename("/") is None


@pytest.mark.parametrize(
    "name, source, ext",
    [
        ("noext", "cuts_vp9.webm", "webm"),
        ("noext", "single_shot.mp4", "mp4"),
        ("clip.MOV", "single_shot.mp4", "mov"),
        ("weird.ext-with-dash", "single_shot.mp4", "mp4"),
        ("noext", None, "bin"),
        # A name's extension names the key only when it is a video's.
        ("poly.html", "single_shot.mp4", "mp4"),
        ("poly.svg", "cuts_vp9.webm", "webm"),
        ("evil.html", None, "bin"),
        ("evil.svg", None, "bin"),
        ("run.exe", None, "bin"),
    ],
)
def test_the_extension_comes_from_the_name_else_the_sniffed_container(
    api, media, name, source, ext
):
    data = (media / source).read_bytes() if source else b"nothing known" * 100
    resp = api.upload(data, name)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    assert api.staged_files() == {f"{job_id}/input/source.{ext}"}
    assert api.submitted[0].staged_source.name == f"source.{ext}"


@pytest.mark.parametrize(
    "raw, shown, said",
    [
        ("\u202egpj.mp4", "gpj.mp4", "(U+202E)"),
        ("é" * 200 + ".mp4", "é" * 125 + ".mp4", "cut from 404 to 254 bytes"),
    ],
)
def test_a_changed_name_is_said_in_status_json(api, video, raw, shown, said):
    resp = api.upload(video, raw)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    status = api.client.get(f"/status/{job_id}").json()
    assert status["source"]["filename"] == resp.json()["filename"] == shown
    (warning,) = status["warnings"]
    assert warning["code"] == "filename_changed" and said in warning["message"]
    assert api.submitted[0].warnings == [warning]


def test_an_ordinary_name_has_no_warning(api, video):
    job_id = api.upload(video, "holiday.mp4").json()["job_id"]
    assert api.client.get(f"/status/{job_id}").json()["warnings"] == []
    assert api.submitted[0].warnings == []


def test_sniff_ext_known_containers():
    assert sniff_ext(b"\0\0\0\x14ftypqt  \0\0\0\0") == "mov"
    assert sniff_ext(b"RIFF\0\0\0\0AVI LIST") == "avi"
    assert sniff_ext(b"\x1aE\xdf\xa3\x01\0\0\0\0\0\0\x1fB\x86\x81\x01B\x82\x88matroska") == "mkv"
    assert sniff_ext(b"\x89PNG\r\n\x1a\n") is None


# --- queue full, store down -----------------------------------------------------------------
def test_a_full_queue_is_503_and_withdraws_the_job(make_api, video):
    api = make_api(queue_max=1)
    first = api.upload(video)
    assert first.status_code == 202
    second = api.upload(video)
    assert second.status_code == 503, second.text
    assert second.json()["error"]["code"] == "queue_full"
    assert int(second.headers["retry-after"]) > 0
    first_id = first.json()["job_id"]
    assert api.staged_files() == {f"{first_id}/input/source.mp4"}
    assert api.job_keys() == {keys.status_key(first_id)}


def test_a_refused_upload_leaves_no_pending_marker(make_api, video):
    """A 503 queue_full leaves nothing a poll would look at: no manifest, no marker."""
    api = make_api(queue_max=1)
    first = api.upload(video)
    assert first.status_code == 202
    for _ in range(3):
        refused = api.upload(video)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "queue_full"
    markers = {info.key for info in api.store.list(keys.PENDING_PREFIX)}
    assert markers == {keys.pending_key(first.json()["job_id"])}


class BrokenStore(LocalStore):
    def put_bytes(self, key, data, **kw):
        raise TransientStoreError("connection refused", setting="R2_ENDPOINT_URL")


def test_a_store_that_cannot_take_the_manifest_is_503_and_leaves_nothing(make_api, video, tmp_path):
    api = make_api(store=BrokenStore)
    resp = api.upload(video)
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert error["code"] == "store_unavailable" and "R2_ENDPOINT_URL" in error["message"]
    assert api.staged_files() == set() and api.submitted == []


# --- status and ids ---------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["status", "results"])
def test_unknown_id_is_404_malformed_id_is_422(api, route):
    unknown = new_job_id()
    resp = api.client.get(f"/{route}/{unknown}")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "job_not_found"
    for bad in (
        "nope",
        "01JD3ZQ7W8X9Y0ABCDEFGHJKM",
        "01JD3ZQ7W8X9Y0ABCDEFGHJKMU",
        "%00",
        "01JD3ZQ7W8X9Y0ABCDEFGHJKMN%00",
        "...",
        "01JD3ZQ7W8X9Y0ABCDEFGHJKMN.json",
    ):
        resp = api.client.get(f"/{route}/{bad}")
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["error"]["code"] == "invalid_job_id"
    # An encoded slash makes another path, which no route serves.
    resp = api.client.get(f"/{route}/..%2F..%2Fetc")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    # Crockford base32 is case-insensitive: a lower-case id names the same job.
    assert api.client.get(f"/{route}/{unknown.lower()}").status_code == 404


# --- results ----------------------------------------------------------------------------------
def _manifest(store, job_id: str, state: str, **kw) -> Manifest:
    manifest = Manifest(job_id=job_id, state=state, origin="api", **kw)
    write_manifest(store, manifest)
    return manifest


def test_results_of_a_queued_job_is_409_with_the_status(api, video):
    job_id = api.upload(video).json()["job_id"]
    resp = api.client.get(f"/results/{job_id}")
    assert resp.status_code == 409
    body = resp.json()
    assert body["error"]["code"] == "job_not_finished" and "queued" in body["error"]["message"]
    assert body["status"]["state"] == "queued" and body["status"]["job_id"] == job_id


def test_results_of_a_failed_job_is_409_with_its_error(api):
    job_id = new_job_id()
    _manifest(
        api.store,
        job_id,
        "failed",
        error={"code": "not_a_video", "message": "not a video: no known container"},
    )
    resp = api.client.get(f"/results/{job_id}")
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "job_failed"
    assert error["job_error"] == {
        "code": "not_a_video",
        "message": "not a video: no known container",
    }
    assert "not_a_video" in error["message"] and resp.json()["status"]["state"] == "failed"


def test_completed_without_results_json_is_404(api):
    job_id = new_job_id()
    _manifest(api.store, job_id, "completed")
    resp = api.client.get(f"/results/{job_id}")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "results_not_found"


def _completed_job(store: LocalStore) -> tuple[str, dict[str, bytes]]:
    """A completed job written by hand: two frames, their images and JSON, no TOON."""
    job_id = new_job_id()
    blobs: dict[str, bytes] = {}
    frames = []
    for n in (0, 25):
        images = {}
        for kind in keys.IMAGE_KINDS:
            key = keys.frame_image_key(job_id, kind, n)
            blobs[key] = f"jpeg {kind} {n}".encode() + os.urandom(64)
            images[kind] = key
        json_key = keys.frame_json_key(job_id, n)
        blobs[json_key] = json.dumps({"frame": n}).encode()
        frames.append(
            {
                "frame": n,
                "time_s": n / 25,
                "scene": 0,
                "objects": [],
                "segments": [],
                "faces": [],
                "images": images,
                "json": json_key,
                "toon": None,
            }
        )
    for key, data in blobs.items():
        store.put_bytes(key, data)
    results = {
        "schema_version": 1,
        "job_id": job_id,
        "video": {"frames": 50},
        "scenes": [],
        "frames": frames,
        "summary": {},
    }
    store.put_bytes(keys.results_key(job_id), json.dumps(results).encode())
    _manifest(store, job_id, "completed")
    return job_id, blobs


def test_results_turn_every_key_into_a_signed_link_that_serves_the_bytes(api):
    job_id, blobs = _completed_job(api.store)
    resp = api.client.get(f"/results/{job_id}")
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["links"]["ttl_s"] == api.settings.r2_url_ttl_seconds
    seen = set()
    for frame in doc["frames"]:
        assert frame["toon"] is None
        for link in [*frame["images"].values(), frame["json"]]:
            assert set(link) == {"key", "url"}
            url = urlsplit(link["url"])
            assert f"{url.scheme}://{url.netloc}" == api.served.base_url
            assert url.path == f"/files/{link['key']}"
            got = httpx.get(link["url"])  # a plain client: the signature is the proof
            assert got.status_code == 200 and got.content == blobs[link["key"]]
            head = httpx.head(link["url"])
            assert head.status_code == 200 and head.content == b""
            assert int(head.headers["content-length"]) == len(blobs[link["key"]])
            seen.add(link["key"])
    assert seen == set(blobs)


def test_a_signed_link_tampered_expired_or_unsigned_is_403(api):
    job_id, _blobs = _completed_job(api.store)
    key = keys.frame_image_key(job_id, "det", 0)
    link = api.client.get(f"/results/{job_id}").json()["frames"][0]["images"]["det"]["url"]
    assert httpx.get(link).status_code == 200
    url = urlsplit(link)
    sig = url.query.rsplit("signature=", 1)[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    other = keys.frame_image_key(job_id, "seg", 0)
    expires = url.query.split("expires=")[1].split("&")[0]
    cases = {
        "invalid_signature": [
            f"{url.path}?expires={expires}&signature={flipped}",
            f"/files/{other}?{url.query}",
            f"{url.path}?expires={int(expires) + 1}&signature={sig}",
        ],
        "missing_signature": [url.path, f"{url.path}?expires={expires}"],
    }
    for code, paths in cases.items():
        for path in paths:
            resp = httpx.get(api.served.base_url + path)
            assert resp.status_code == 403, path
            assert resp.json()["error"]["code"] == code, path
    secret = load_signing_secret(api.settings)
    old = signed_file_url(api.served.base_url, secret, key, 60, now=time.time() - 3600)
    resp = httpx.get(old)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "link_expired"


def test_a_signed_link_cannot_reach_outside_the_store(api, tmp_path):
    secret = load_signing_secret(api.settings)
    (tmp_path / "outside.txt").write_text("secret")
    for key in (
        "../outside.txt",
        "jobs/../../outside.txt",
        ".meta/x",
        "not-a-job/x.jpg",
        f"jobs/{new_job_id()}/frames/det/missing.jpg",
    ):
        signed = signed_file_url(api.served.base_url, secret, key, 60)
        query = signed.split("?", 1)[1]
        with raw_connect(api.served.port) as sock:  # unnormalised path, as sent
            sock.sendall(f"GET /files/{key}?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, body = read_response(sock)
        assert status == 404, (key, body)
        assert body["error"]["code"] == "not_found"


def test_links_survive_a_restart(make_api, tmp_path):
    first = make_api()
    job_id, blobs = _completed_job(first.store)
    link = first.client.get(f"/results/{job_id}").json()["frames"][1]["json"]
    second = make_api()  # a new process, same folders
    url = urlsplit(link["url"])
    resp = httpx.get(f"{second.served.base_url}{url.path}?{url.query}")
    assert resp.status_code == 200 and resp.content == blobs[link["key"]]
    secret_file = Path(first.settings.temp_media_dir) / SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_url_signing_secret_setting_is_used(tmp_path):
    settings = load_settings(
        {"TEMP_MEDIA_DIR": str(tmp_path / "t"), "URL_SIGNING_SECRET": "configured-secret"}
    )
    assert load_signing_secret(settings) == b"configured-secret"
    assert not (tmp_path / "t" / SECRET_FILE).exists()


def test_public_base_url_names_the_links(make_api):
    api = make_api(public_base_url="https://videos.example.org/api")
    job_id, _ = _completed_job(api.store)
    doc = api.client.get(f"/results/{job_id}").json()
    assert doc["frames"][0]["json"]["url"].startswith(
        f"https://videos.example.org/api/files/{keys.frame_json_key(job_id, 0)}?expires="
    )


# --- auth -------------------------------------------------------------------------------------
ROUTES = [
    ("POST", "/analyze-video"),
    ("GET", "/status/01JD3ZQ7W8X9Y0ABCDEFGHJKMN"),
    ("GET", "/results/01JD3ZQ7W8X9Y0ABCDEFGHJKMN"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/no-such-route"),
]


def test_with_a_token_every_route_but_healthz_needs_it(make_api, video):
    api = make_api(api_token=TOKEN)
    for method, path in ROUTES:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ):
            kwargs = {"files": {"file": ("a.mp4", video)}} if method == "POST" else {}
            resp = api.client.request(method, path, headers=headers, **kwargs)
            assert resp.status_code == 401, (method, path, headers)
            assert resp.json()["error"]["code"] == "unauthorized"
            assert resp.headers["www-authenticate"] == "Bearer"
    assert api.staged_files() == set() and api.submitted == []
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert api.client.get("/healthz").status_code == 200
    assert api.client.head("/healthz").status_code == 200
    assert api.client.get("/metrics", headers=good).status_code == 200
    assert api.client.get("/docs", headers=good).status_code == 200
    assert api.client.get(ROUTES[1][1], headers=good).status_code == 404
    resp = api.client.post(
        "/analyze-video",
        files={"file": ("a.mp4", video)},
        headers={"authorization": f"bearer {TOKEN}"},
    )
    assert resp.status_code == 202
    job_id, blobs = _completed_job(api.store)
    doc = api.client.get(f"/results/{job_id}", headers=good).json()
    link = doc["frames"][0]["images"]["original"]
    resp = httpx.get(link["url"])  # no token: the signature is the proof
    assert resp.status_code == 200 and resp.content == blobs[link["key"]]


# --- health, metrics, errors, CORS --------------------------------------------------------------
def test_healthz_reports_what_health_says(make_api):
    state = {"result": {"ok": True, "store": "ok", "runner": "alive"}}

    def health():
        result = state["result"]
        if isinstance(result, Exception):
            raise result
        if result == "slow":
            time.sleep(3)
            return {"ok": True}
        return result

    api = make_api(health=health, app_kwargs={"health_timeout_s": 0.5})
    resp = api.client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() | {} == {
        "ok": True,
        "store": "ok",
        "runner": "alive",
        "status": "ok",
        "version": resp.json()["version"],
    }
    state["result"] = {"ok": False, "store": "unreachable"}
    resp = api.client.get("/healthz")
    assert resp.status_code == 503 and resp.json()["status"] == "unhealthy"
    state["result"] = RuntimeError("runner thread died")
    resp = api.client.get("/healthz")
    assert resp.status_code == 503 and "runner thread died" in resp.json()["error"]
    state["result"] = {"store": "ok"}  # no "ok": not healthy
    assert api.client.get("/healthz").status_code == 503
    state["result"] = "slow"
    started = time.monotonic()
    resp = api.client.get("/healthz")
    assert resp.status_code == 503 and time.monotonic() - started < 2.5


def test_healthz_answers_head_like_get_without_a_body(make_api):
    """Issue 25 (11): load balancers and uptime checkers send HEAD; it answered 405."""
    state = {"ok": True}
    api = make_api(health=lambda: dict(state))
    resp = api.client.head("/healthz")
    assert resp.status_code == 200 and resp.content == b""
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["content-type"] == "application/json"
    state["ok"] = False
    resp = api.client.head("/healthz")
    assert resp.status_code == 503 and resp.content == b""


def _samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_route_and_status(api, video):
    """Each request moves its route's counters (the metrics are process-wide, so the test
    compares before and after)."""
    route = ("route", "/status/{job_id}")
    status_404 = ("vidwatch_http_requests_total", (route, ("status", "404")))
    timed = ("vidwatch_http_request_seconds_count", (route,))
    accepted = ("vidwatch_api_uploads_total", (("outcome", "accepted"),))
    before = _samples(api.client)
    for _ in range(3):
        api.client.get(f"/status/{new_job_id()}")
    assert api.upload(video).status_code == 202
    upload_bytes = ("vidwatch_api_upload_bytes_total", ())
    want = {status_404: 3, timed: 3, accepted: 1, upload_bytes: len(video)}

    def moved() -> dict:
        # A request is counted once its answer is sent: the last one may still be counting.
        after = _samples(api.client)
        got = {name: after.get(name, 0) - before.get(name, 0) for name in want}
        return got if got == want else {}

    wait_for(moved, 5, "the request counters")


def test_errors_are_json_with_a_code_and_the_request_id(api):
    resp = api.client.get("/nowhere", headers={"X-Request-ID": "client-id-42"})
    assert resp.status_code == 404
    assert resp.headers["x-request-id"] == "client-id-42"
    assert resp.json() == {
        "error": {"code": "not_found", "message": "Not Found", "request_id": "client-id-42"}
    }
    resp = api.client.delete(
        "/status/01JD3ZQ7W8X9Y0ABCDEFGHJKMN", headers={"X-Request-ID": "bad id\twith junk"}
    )
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"
    assert resp.headers["x-request-id"] != "bad id\twith junk"
    assert len(resp.headers["x-request-id"]) == 32


def test_request_ids_are_in_the_logs(api, video):
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        resp = api.client.post(
            "/analyze-video", files={"file": ("a.mp4", video)}, headers={"X-Request-ID": "rid-77"}
        )
        api.client.get("/status/nope", headers={"X-Request-ID": "rid-78"})
        # The request's log line is written once its answer is sent.
        wait_for(
            lambda: sum(e["event"] == "http_request" for e in logs) >= 2, 5, "the request log lines"
        )
    assert resp.status_code == 202
    job_id = resp.json()["job_id"]
    submitted = [e for e in logs if e["event"] == "job_submitted"]
    assert [(e["request_id"], e["job_id"]) for e in submitted] == [("rid-77", job_id)]
    requests = {e["request_id"]: e for e in logs if e["event"] == "http_request"}
    assert requests["rid-77"]["status"] == 202
    assert requests["rid-78"]["status"] == 422 and "job_id" not in requests["rid-78"]


def test_cors_is_off_by_default_and_on_when_configured(make_api, tmp_path):
    api = make_api()
    origin = {"Origin": "https://app.example"}
    resp = api.client.get("/healthz", headers=origin)
    assert "access-control-allow-origin" not in resp.headers
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    assert (
        "access-control-allow-origin"
        not in api.client.options("/analyze-video", headers=preflight).headers
    )
    cors = make_api(cors_origins="https://app.example", api_token=TOKEN)
    resp = cors.client.options("/analyze-video", headers=preflight)
    assert resp.status_code == 200  # a preflight carries no token
    assert resp.headers["access-control-allow-origin"] == "https://app.example"
    resp = cors.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in resp.headers


def test_openapi_documents_the_routes(api):
    doc = api.client.get("/openapi.json").json()
    assert {
        "/analyze-video",
        "/status/{job_id}",
        "/results/{job_id}",
        "/healthz",
        "/metrics",
        "/files/{key}",
    } <= set(doc["paths"])
    schema = doc["paths"]["/analyze-video"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]["schema"]
    assert set(schema["properties"]) == {"file", "cleanup_local_video_after_upload", "reanalyze"}


def test_concurrent_uploads_do_not_mix_up(api, video):
    """Eight concurrent uploads: eight jobs, each staged file the bytes its client sent."""
    payloads = [video + bytes([i]) * (i + 1) for i in range(8)]
    results: list[httpx.Response | None] = [None] * len(payloads)

    def send(i: int) -> None:
        with api.served.client() as client:
            results[i] = client.post("/analyze-video", files={"file": (f"c{i}.mp4", payloads[i])})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for i, resp in enumerate(results):
        assert resp is not None and resp.status_code == 202
        job_id = resp.json()["job_id"]
        assert (api.staging / job_id / "input" / "source.mp4").read_bytes() == payloads[i]
    assert len({r.json()["job_id"] for r in results}) == len(payloads)
