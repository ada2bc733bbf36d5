"""The job pages over HTTP without a browser (tests/api/test_pages_browser.py drives
Chromium): the list, one job in each state, escaping of user data, the signed links the
page carries, and the browsers' way in with API_TOKEN (the sign-in form and its cookie)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from tests import documents
from tests.api.api_harness import Served, local_api, serve
from vidwatch.api.session import SESSION_COOKIE, SESSIONS_PREFIX, Session, cookie_value
from vidwatch.config import load_settings
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

TOKEN = "page-token-8d2e"
EVIL = "<script>alert(1)</script>.mp4"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, attr: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.tags if attr in a]


def _jpeg(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), color).save(out, "JPEG")
    return out.getvalue()


def put_job(
    store: LocalStore, *, state: str, filename: str, people: bool = True, **extra: Any
) -> str:
    """A job as a run leaves it: manifest, and for a completed one results.json with real
    JPEGs for every image key (three scenes, one sampled frame each)."""
    job_id = new_job_id()
    time.sleep(0.002)  # distinct ULID milliseconds: the list's order is the ids' order
    manifest = Manifest(job_id=job_id, origin="api", filename=filename, state=state)
    manifest.source_key = keys.source_key(job_id, "mp4")
    store.put_bytes(manifest.source_key, b"\x00" * 16, content_type="video/mp4")
    for name, value in extra.items():
        setattr(manifest, name, value)
    if state == "completed":
        scenes, frames = [], []
        for i, (a, b) in enumerate([(0, 25), (25, 60), (60, 75)]):
            scenes.append(
                {
                    "index": i,
                    "start_frame": a,
                    "end_frame": b,
                    "start_s": a / 25,
                    "end_s": b / 25,
                    "keyframe": a,
                    **({"people": [0]} if people else {}),
                }
            )
            images = {}
            for kind in keys.IMAGE_KINDS:
                images[kind] = keys.frame_image_key(job_id, kind, a)
                store.put_bytes(images[kind], _jpeg((40 * i, 80, 120)), content_type="image/jpeg")
            frames.append(
                {
                    "frame": a,
                    "time_s": a / 25,
                    "scene": i,
                    "objects": [{"label": "<img src=x onerror=alert(2)>", "confidence": 0.9}],
                    "segments": [],
                    "faces": [{"person": 0, "confidence": 0.99}],
                    "images": images,
                    "json": keys.frame_json_key(job_id, a),
                    "toon": None,
                }
            )
        results: dict[str, Any] = {
            "schema_version": 1,
            "job_id": job_id,
            "video": {
                "fps": 25.0,
                "frames": 75,
                "width": 64,
                "height": 36,
                "duration_s": 3.0,
                "codec": "h264",
            },
            "scenes": scenes,
            "frames": frames,
            "summary": {"labels": {}, "faces": {"frames": 3, "max_in_frame": 1}},
            "provenance": {
                "vidwatch_version": "0.1.0",
                "source_sha256": "ab" * 32,
                "models": {"detect": {"name": "yolo11n.pt", "sha256": "cd" * 32}},
                "settings": {"sample_fps": 1.0},
                "device": "cpu",
            },
            "exports": {"chapters": keys.export_key(job_id, "chapters")},
            "timings_s": {"decode": 0.5, "models": 11.2, "write": 0.8, "wall": 6.6},
        }
        store.put_bytes(keys.export_key(job_id, "chapters"), b"WEBVTT\n")
        if people:
            thumb = f"{keys.job_prefix(job_id)}people/person_0.jpg"
            store.put_bytes(thumb, _jpeg((200, 10, 10)), content_type="image/jpeg")
            results["people"] = [
                {
                    "person": 0,
                    "faces": 3,
                    "frames": [0, 25, 60],
                    "scenes": [0, 1, 2],
                    "first_s": 0.0,
                    "last_s": 2.4,
                    "thumbnail": thumb,
                }
            ]
            results["label_segments"] = [
                {
                    "label": "dog",
                    "scene": 1,
                    "start_s": 1.0,
                    "end_s": 2.4,
                    "samples": 1,
                    "max_confidence": 0.8,
                }
            ]
        store.put_bytes(keys.results_key(job_id), json.dumps(documents.complete(results)).encode())
    write_manifest(store, manifest)
    return job_id


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:

        def make(**env: str) -> tuple[Served, LocalStore, httpx.Client]:
            settings = load_settings(
                {
                    "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
                    "LOCAL_STORE_DIR": str(tmp_path / "store"),
                    **env,
                }
            )
            app, store = local_api(settings, lambda spec: None)
            served = stack.enter_context(serve(app))
            client = stack.enter_context(served.client(follow_redirects=False))
            return served, store, client

        yield make


def test_the_list_shows_jobs_newest_first_with_names_as_text(make_site):
    _, store, client = make_site()
    empty = client.get("/jobs").text
    assert "No jobs yet" in empty and '<a href="/docs">API docs</a>' in empty
    done = put_job(store, state="completed", filename="holiday.mp4")
    evil = put_job(store, state="failed", filename=EVIL, error={"code": "x", "message": "y"})
    running = put_job(store, state="running", filename="long.mp4", frames_done=5, frames_total=10)
    resp = client.get("/jobs")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "script-src 'sha256-" in resp.headers["content-security-policy"]
    page = Tags(resp.text)
    assert [a["data-job"] for a in page.having("data-job")] == [running, evil, done]
    assert "<script>alert(1)" not in resp.text and EVIL in "".join(page.text)
    assert [t for t, _ in page.tags].count("script") == 1  # the page's own
    older = client.get("/jobs?limit=2")
    assert [a["data-job"] for a in Tags(older.text).having("data-job")] == [running, evil]
    nxt = re.search(r'href="(/jobs\?before=[^"]+)"', older.text).group(1).replace("&amp;", "&")
    assert [a["data-job"] for a in Tags(client.get(nxt).text).having("data-job")] == [done]


def test_a_completed_jobs_page_links_every_image_and_shows_what_results_carry(make_site):
    _, store, client = make_site()
    job_id = put_job(store, state="completed", filename=EVIL)
    resp = client.get(f"/jobs/{job_id.lower()}")
    assert resp.status_code == 200
    page = Tags(resp.text)
    assert [a["data-scene"] for a in page.having("data-scene")] == ["0", "1", "2"]
    assert [a["data-seek"] for a in page.having("data-scene")] == ["0.0", "1.0", "2.4"]
    assert [a["data-person"] for a in page.having("data-person")] == ["0"]
    assert [a["data-label"] for a in page.having("data-label")] == ["Person 0", "dog"]
    text = "".join(page.text)
    assert EVIL in text and "<img src=x onerror=alert(2)>" in text  # shown, as text
    assert "<script>alert(1)" not in resp.text and "<img src=x" not in resp.text
    images = [a["src"] for t, a in page.tags if t == "img"]
    assert len(images) == 3 + 1 + 3  # keyframes, the person, the frames
    switches = [a[f"data-src-{k}"] for a in page.having("data-src-det") for k in keys.IMAGE_KINDS]
    for url in {*images, *switches}:
        parts = urlsplit(url)
        assert parts.path.startswith(f"/files/jobs/{job_id}/") and "signature=" in parts.query
        got = httpx.get(url)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    video = next(a for t, a in page.tags if t == "source")["src"]
    assert httpx.get(video).content == b"\x00" * 16
    track = next(a for t, a in page.tags if t == "track")
    assert track["kind"] == "chapters" and track["src"].startswith("data:text/vtt;base64,")
    assert "chapters.vtt" in text and "yolo11n.pt" in text and "ab" * 32 in text
    # /results turns the exports (and the people's thumbnails) into signed links too.
    doc = client.get(f"/results/{job_id}").json()
    chapters = doc["exports"]["chapters"]
    assert chapters["key"] == keys.export_key(job_id, "chapters")
    assert httpx.get(chapters["url"]).content == b"WEBVTT\n"
    assert httpx.get(doc["people"][0]["thumbnail"]["url"]).status_code == 200


def _spans(html: str, css_class: str) -> list[str]:
    return [
        " ".join(m.split())
        for m in re.findall(rf'<span class="{css_class}">(.*?)</span>', html, flags=re.S)
    ]


def test_captions_count_in_words_and_provenance_says_why_models_outlast_wall(make_site):
    _, store, client = make_site()
    job_id = put_job(store, state="completed", filename="a.mp4")
    html = client.get(f"/jobs/{job_id}").text
    # One object, no mask, one face per frame: singular and plural as English has them.
    counts = _spans(html, "counts")
    assert counts and all(c.startswith("1 object · 0 masks · 1 face · ") for c in counts), counts
    assert _spans(html, "times")[-3:] == [
        "#0 · 0:00.000 · scene 1",
        "#25 · 0:01.000 · scene 2",
        "#60 · 0:02.400 · scene 3",
    ]
    assert "3 faces" in " ".join(_spans(html, "times"))  # the person: 3 faces
    page = Tags(html)
    # The model time is summed over lanes that run at once, and the page says so.
    note = [a for _, a in page.tags if a.get("id") == "timing-models"]
    assert note and "in parallel" in (note[0].get("title") or "")
    text = " ".join("".join(page.text).split())
    assert "models 11.2 s (summed over the model lanes, which run in parallel)" in text
    assert "wall 6.6 s" in text


def test_a_job_page_without_people_has_no_people_section(make_site):
    _, store, client = make_site()
    job_id = put_job(store, state="completed", filename="a.mp4", people=False)
    page = Tags(client.get(f"/jobs/{job_id}").text)
    assert len(page.having("data-scene")) == 3 and page.having("data-person") == []
    # Without label_segments, labels are drawn from the frames; people from the faces.
    assert {a["data-label"] for a in page.having("data-label")} == {
        "Person 0",
        "<img src=x onerror=alert(2)>",
    }


def test_running_failed_and_unknown_jobs(make_site):
    _, store, client = make_site()
    running = put_job(
        store,
        state="running",
        filename="r.mp4",
        stage="analyzing",
        frames_done=30,
        frames_total=120,
    )
    page = client.get(f"/jobs/{running}").text
    assert f'data-status-url="/status/{running}"' in page
    assert 'id="progress" max="100" value="25.0"' in page and "30 of 120" in page
    failed = put_job(
        store,
        state="failed",
        filename="f.mp4",
        error={"code": "unreadable_video", "message": "<b>not a video</b>"},
    )
    resp = client.get(f"/jobs/{failed}")
    assert "unreadable_video" in resp.text and "&lt;b&gt;not a video&lt;/b&gt;" in resp.text
    failed_page = Tags(resp.text)
    assert failed_page.having("data-status-url") == failed_page.having("data-scene") == []
    gone = put_job(store, state="completed", filename="g.mp4")
    store.delete(keys.results_key(gone))
    resp = client.get(f"/jobs/{gone}")
    assert resp.status_code == 200 and "results.json is gone" in resp.text
    # A duplicate shows the results of the job that analysed the same bytes.
    original = put_job(store, state="completed", filename="o.mp4")
    duplicate = put_job(store, state="completed", filename="d.mp4")
    store.delete(keys.results_key(duplicate))
    manifest = Manifest.from_json(json.loads(store.get_bytes(keys.status_key(duplicate))))
    manifest.duplicate_of = original
    write_manifest(store, manifest)
    page = Tags(client.get(f"/jobs/{duplicate}").text)
    assert len(page.having("data-scene")) == 3
    assert all(f"/files/jobs/{original}/" in a["src"] for a in page.having("data-src-original"))
    # ...and plays its own source, which is in the store under its own id.
    video = [a for t, a in page.tags if t == "source"]
    assert len(video) == 1 and f"/files/jobs/{duplicate}/input/source.mp4" in video[0]["src"]
    assert httpx.get(video[0]["src"]).content == b"\x00" * 16
    assert client.get(f"/jobs/{new_job_id()}").status_code == 404
    assert client.get("/jobs/not-a-job").status_code == 422


def test_with_a_token_pages_need_the_sign_in_cookie(make_site):
    served, store, client = make_site(API_TOKEN=TOKEN)
    job_id = put_job(store, state="completed", filename="a.mp4")
    for path in ("/jobs", f"/jobs/{job_id}"):
        resp = client.get(path)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
        assert 'name="token" type="password"' in resp.text
        assert Tags(resp.text).having("data-scene") == []
        assert f'name="next" value="{path}"' in resp.text
    assert client.get(f"/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"}).is_success
    # Wrong token: the form again. Right one: a cookie, HttpOnly and SameSite=Strict.
    wrong = client.post("/login", data={"token": "nope", "next": "/jobs"})
    assert (
        wrong.status_code == 401 and "not right" in wrong.text and "set-cookie" not in wrong.headers
    )
    resp = client.post("/login", data={"token": TOKEN, "next": f"/jobs/{job_id}"})
    assert resp.status_code == 303 and resp.headers["location"] == f"/jobs/{job_id}"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    with served.client(cookies={SESSION_COOKIE: value}) as browser:
        page = browser.get(f"/jobs/{job_id}")
        assert page.status_code == 200 and len(Tags(page.text).having("data-scene")) == 3
        assert browser.get("/jobs").status_code == 200
        assert browser.get(f"/status/{job_id}").status_code == 200  # the live progress
        # A cookie never stands in for the header on a write.
        assert browser.post("/analyze-video", files={"file": ("a.mp4", b"x")}).status_code == 401
        image = Tags(page.text).having("data-src-original")[0]["src"]
    # The page's images: the signed link works alone; without (or with a bad) signature no.
    assert httpx.get(image).status_code == 200
    bare = image.split("?")[0]
    assert httpx.get(bare).status_code == 403
    assert httpx.get(image.replace("signature=", "signature=0")).status_code == 403
    for bad in (
        value[:-2] + "00",
        cookie_value(TOKEN.encode(), Session(value.split(".")[0], int(time.time()) - 60)),
        cookie_value(b"other-token", Session(value.split(".")[0], int(time.time()) + 60)),
        cookie_value(TOKEN.encode(), Session("never-opened", int(time.time()) + 60)),
    ):
        with served.client(cookies={SESSION_COOKIE: bad}) as other:
            assert other.get(f"/jobs/{job_id}").status_code == 401
    # Only this site's paths as the place to go after signing in.
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        resp = client.post("/login", data={"token": TOKEN, "next": target})
        assert resp.headers["location"] == "/jobs"
    out = client.post("/logout")
    assert out.status_code == 303 and f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]


def test_without_a_token_sign_in_is_not_needed(make_site):
    _, _, client = make_site()
    assert client.get("/login?next=/jobs/x").headers["location"] == "/jobs/x"
    assert client.get("/jobs").status_code == 200


def test_the_openapi_document_describes_the_pages(make_site):
    _, _, client = make_site()
    paths = client.get("/openapi.json").json()["paths"]
    pages = {
        ("/jobs", "get"),
        ("/jobs/{job_id}", "get"),
        ("/login", "get"),
        ("/login", "post"),
        ("/logout", "post"),
    }
    for path, method in pages:
        operation = paths[path][method]
        assert operation["tags"] == ["pages"] and operation["summary"], (path, method)
        if (path, method) == ("/jobs", "get"):  # JSON too, for Accept: application/json
            assert set(operation["responses"]["200"]["content"]) == {
                "text/html",
                "application/json",
            }, path
        elif (path, method) != ("/login", "post"):
            assert set(operation["responses"]["200"]["content"]) == {"text/html"}, path
    limit = {p["name"]: p for p in paths["/jobs"]["get"]["parameters"]}["limit"]
    assert limit["schema"]["maximum"] == 500
    form = paths["/login"]["post"]["requestBody"]["content"]
    assert set(form) == {"application/x-www-form-urlencoded"}


def test_a_bad_query_answers_a_browser_with_a_page_and_a_client_with_json(make_site):
    _, _, client = make_site()
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for path in ("/jobs?limit=501", "/jobs?limit=0", "/jobs?limit=many"):
        page = client.get(path, headers=browser)
        assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
        assert "limit" in page.text and "Invalid request" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert Tags(page.text).having("data-job") == []
        for accept in ({}, {"Accept": "application/json"}, {"Accept": "*/*"}):
            resp = client.get(path, headers=accept)
            assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_request"
    # The API's own routes keep JSON whatever the client accepts.
    resp = client.get("/status/not-an-id", headers=browser)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_job_id"


def _signed_in(client: httpx.Client) -> str:
    resp = client.post("/login", data={"token": TOKEN, "next": "/jobs"})
    assert resp.status_code == 303, resp.text
    return resp.headers["set-cookie"].split(";")[0].split("=", 1)[1]


def test_logout_ends_the_session_on_every_daemon_of_the_store(make_site):
    """Issue 21, point 2: a cookie captured before ``POST /logout`` opens nothing after it,
    on this daemon or another one on the same store; the bearer header still works."""
    served, store, client = make_site(API_TOKEN=TOKEN)
    other, _, _ = make_site(API_TOKEN=TOKEN)  # a second daemon: its own app, the same store
    job_id = put_job(store, state="completed", filename="a.mp4")
    kept = _signed_in(client)
    captured = _signed_in(client)
    assert len(list(store.list(SESSIONS_PREFIX))) == 2
    for site in (served, other):
        with site.client(cookies={SESSION_COOKIE: captured}) as browser:
            assert browser.get("/jobs").status_code == 200
            assert browser.get(f"/status/{job_id}").status_code == 200

    with served.client(cookies={SESSION_COOKIE: captured}, follow_redirects=False) as browser:
        out = browser.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    for site in (served, other):
        with site.client(cookies={SESSION_COOKIE: captured}) as browser:
            page = browser.get("/jobs")
            assert page.status_code == 401 and 'name="token"' in page.text
            assert browser.get(f"/jobs/{job_id}").status_code == 401
            assert browser.get(f"/status/{job_id}").status_code == 401
        # Another browser's session is its own; the token is the token.
        with site.client(cookies={SESSION_COOKIE: kept}) as browser:
            assert browser.get("/jobs").status_code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{site.base_url}/status/{job_id}", headers=bearer).status_code == 200
    # Logging out on the other daemon ends the other session everywhere too.
    with other.client(cookies={SESSION_COOKIE: kept}) as browser:
        assert browser.post("/logout").status_code == 303
    with served.client(cookies={SESSION_COOKIE: kept}) as browser:
        assert browser.get("/jobs").status_code == 401
    assert list(store.list(SESSIONS_PREFIX)) == []


def test_wrong_tokens_are_limited_per_address_with_429_and_retry_after(make_site):
    """Issue 21, point 2: after 5 wrong tokens within a minute, ``POST /login`` answers 429
    with Retry-After in the API's error shape, even to the right token; a right token
    before that clears the count."""
    _, _, client = make_site(API_TOKEN=TOKEN)
    for _ in range(4):
        assert client.post("/login", data={"token": "nope"}).status_code == 401
    _signed_in(client)  # a success resets
    for _ in range(5):
        assert client.post("/login", data={"token": "nope"}).status_code == 401
    for token in ("nope", TOKEN):
        refused = client.post("/login", data={"token": token})
        assert refused.status_code == 429, refused.text
        assert 50 <= int(refused.headers["retry-after"]) <= 60
        error = refused.json()["error"]
        assert error["code"] == "too_many_login_attempts" and error["request_id"]
        assert "set-cookie" not in refused.headers


def test_every_served_page_has_one_header_and_the_static_report_none() -> None:
    """The pages the API serves share one header (Jobs, People, API docs, the search box);
    report.html, opened from a folder, links nowhere it cannot reach."""
    from vidwatch.report.people import render_people, render_person
    from vidwatch.report.render import render_job, render_jobs, render_search

    status = {
        "job_id": "01JD3Y5Z0000000000000000AA",
        "state": "queued",
        "stage": "staging",
        "source": {"filename": "a.mp4"},
        "progress": {"frames_done": 0, "frames_total": None, "percent": 0.0},
    }
    person = {
        "id": "P01JD3Y5Z0000000000000000AA",
        "name": None,
        "jobs": 0,
        "thumbnail": None,
        "appearances": [],
    }
    served = {
        "jobs": render_jobs([]),
        "job": render_job(status, None, lambda key: key, jobs_url="/jobs"),
        "people": render_people([]),
        "person": render_person(person),
        "search": render_search(
            [], form=dict.fromkeys(["q", "label", "person", "job", "from", "to"], "")
        ),
    }
    nav = '<a href="/jobs">Jobs</a> <a href="/people">People</a> <a href="/docs">API docs</a>'
    for name, page in served.items():
        assert nav in page.html, name
        assert '<form class="search" method="get" action="/search"' in page.html, name
    report = render_job(status, None, lambda key: key).html
    assert 'href="/people"' not in report and 'action="/search"' not in report
