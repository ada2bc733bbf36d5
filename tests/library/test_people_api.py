"""The /people routes and names in /results over a real uvicorn, on a library built with
synthetic descriptors (the enrolment routes, which need the face models, at the end)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ulid import ULID

from tests.api.api_harness import Served, serve
from tests.library.faces import Faces, read_results, write_job
from tests.library.photo_video import photo_bytes, side_by_side
from vidwatch.api.app import create_app
from vidwatch.api.context import ApiContext
from vidwatch.api.links import FileLinkSigner
from vidwatch.config import load_settings
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.library import LibraryChange, PeopleLibrary, PersonNotFound
from vidwatch.library import keys as lkeys
from vidwatch.library.link import link_results
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

TOKEN = "people-token-5d1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {**AUTH, "Accept": "application/json"}


class Site:
    def __init__(self, root: Path, photo_faces: Any = None, **env: str) -> None:
        self.settings = load_settings(
            {
                "TEMP_MEDIA_DIR": str(root / "tmp"),
                "LOCAL_STORE_DIR": str(root / "store"),
                "API_TOKEN": TOKEN,
                **env,
            }
        )
        signer = FileLinkSigner.from_settings(self.settings)
        self.store = LocalStore(self.settings.local_store_dir, url_signer=signer)
        self.heard: list[LibraryChange] = []
        self.library = PeopleLibrary(self.store, on_change=self.heard.append)
        self.ctx = ApiContext(
            settings=self.settings,
            store=self.store,
            submit=lambda spec: None,
            health=lambda: {"ok": True},
            signer=signer,
            library=self.library,
            photo_faces=photo_faces,
        )
        self.faces = Faces()

    def job(self, who: list[str], file_name: str = "clip.mp4") -> str:
        """A completed job whose people are ``who``, linked as a job's end links them."""
        job_id = str(ULID())
        write_manifest(
            self.store,
            Manifest(job_id=job_id, state="completed", stage="done", filename=file_name),
        )
        doc = write_job(self.store, job_id, len(who), file_name)
        doc.update({"frames": [], "exports": {}})
        views = {k: self.faces.views(w) for k, w in enumerate(who)}
        link_results(self.library, job_id, doc, views, file_name=file_name)
        self.store.put_bytes(keys.results_key(job_id), json.dumps(doc).encode())
        return job_id

    def ids(self, job_id: str) -> list[str | None]:
        return [p["library_id"] for p in read_results(self.store, job_id)["people"]]


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


@pytest.fixture
def served(site: Site) -> Iterator[Served]:
    with serve(create_app(site.ctx)) as s:
        yield s


def test_results_carry_current_names(site: Site, served: Served) -> None:
    first, second = site.job(["ann", "stranger"], "a.mp4"), site.job(["stranger"], "b.mp4")
    ann, stranger = site.ids(first)
    with served.client(headers=JSON) as http:
        people = http.get(f"/results/{first}").json()["people"]
        assert [(p["library_id"], p["name"]) for p in people] == [(ann, None), (stranger, None)]
        assert people[0]["thumbnail"]["url"]  # still a signed link
        assert http.patch(f"/people/{stranger}", json={"name": "Zed"}).status_code == 200
        for job_id in (first, second):  # at once, in the old jobs too
            names = {
                p["library_id"]: p["name"] for p in http.get(f"/results/{job_id}").json()["people"]
            }
            assert names[stranger] == "Zed"
        assert http.get(f"/results/{first}").json()["people"][0]["name"] is None
    # The file keeps the id only.
    assert "name" not in read_results(site.store, first)["people"][1]


def test_list_show_rename_merge_forget(site: Site, served: Served) -> None:
    jobs = [site.job(["bea", "cid"], "one.mp4"), site.job(["cid"], "two.mp4"), site.job(["dan"])]
    bea, cid = site.ids(jobs[0])
    (dan,) = site.ids(jobs[2])
    with served.client(headers=JSON) as http:
        page = http.get("/people", params={"limit": 2}).json()
        assert [p["id"] for p in page["people"]] == sorted([bea, cid, dan], reverse=True)[:2]
        rest = http.get(page["next"]).json()
        assert len(rest["people"]) == 1 and rest["next"] is None
        everyone = {p["id"]: p for p in page["people"] + rest["people"]}
        assert everyone[cid]["jobs"] == 2 and everyone[cid]["name"] is None
        assert http.get(everyone[cid]["thumbnail"]).status_code == 200  # the library's crop

        shown = http.get(f"/people/{cid}").json()
        assert shown["id"] == cid and shown["name"] is None
        assert sorted(
            (a["job_id"], a["file_name"], a["person"]) for a in shown["appearances"]
        ) == sorted([(jobs[0], "one.mp4", 1), (jobs[1], "two.mp4", 0)])
        for a in shown["appearances"]:
            assert set(a) >= {"job_id", "file_name", "person", "scenes", "first_s", "last_s"}

        assert http.patch(f"/people/{bea}", json={"name": "Bea"}).json()["name"] == "Bea"
        merged = http.post(f"/people/{bea}/merge", json={"from": dan})
        assert merged.status_code == 200 and merged.json()["jobs"] == 2
        assert http.get(f"/people/{dan}").status_code == 404
        assert site.ids(jobs[2]) == [bea]

        assert http.delete(f"/people/{cid}").status_code == 204
        assert http.get(f"/people/{cid}").status_code == 404
        assert site.ids(jobs[1]) == [None]
        assert site.store.head(keys.person_thumbnail_key(jobs[1], 0)) is None
        assert site.store.head(lkeys.person_key(cid)) is None
    assert [c.kind for c in site.heard[-3:]] == ["renamed", "merged", "forgotten"]


def test_errors(site: Site, served: Served) -> None:
    (eve,) = site.ids(site.job(["eve"]))
    unknown = "P" + str(ULID())
    with served.client(headers=JSON) as http:
        for method, path, body in (
            ("GET", f"/people/{unknown}", None),
            ("PATCH", f"/people/{unknown}", {"name": "x"}),
            ("POST", f"/people/{unknown}/merge", {"from": eve}),
            ("POST", f"/people/{eve}/merge", {"from": unknown}),
            ("DELETE", f"/people/{unknown}", None),
        ):
            resp = http.request(method, path, json=body)
            assert resp.status_code == 404, (method, path, resp.text)
            assert resp.json()["error"]["code"] == "person_not_found"
        bad = [
            ("GET", "/people/not-a-person", None, "invalid_person_id"),
            ("PATCH", f"/people/{eve}", {"nom": "x"}, "invalid_name"),
            ("PATCH", f"/people/{eve}", {"name": "x" * 300}, "invalid_name"),
            ("POST", f"/people/{eve}/merge", {"from": eve}, "same_person"),
            ("POST", f"/people/{eve}/merge", {}, "invalid_person_id"),
        ]
        for method, path, body, code in bad:
            resp = http.request(method, path, json=body)
            assert resp.status_code == 422 and resp.json()["error"]["code"] == code, resp.text
        # No face models in this API: enrolment says so, and nothing is stored.
        resp = http.post("/people", data={"name": "X"}, files={"photo": ("a.jpg", b"\xff\xd8\xff")})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "enrolment_unavailable"
    with served.client() as http:  # no token
        resp = http.get("/people", headers={"Accept": "application/json"})
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
        assert http.delete(f"/people/{eve}").status_code == 401
        # A signed-in browser's cookie: a form from another site cannot use it to forget
        # anyone; the pages' own forms can.
        login = http.post("/login", data={"token": TOKEN, "next": "/people"})
        assert login.status_code == 303 and http.cookies.get("vidwatch_session")
        for headers in (
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},
            {},
        ):
            resp = http.post(f"/people/{eve}/forget", headers=headers)
            assert resp.status_code == 401, headers
        assert http.delete(f"/people/{eve}").status_code == 401  # not a form: token only
        assert PeopleLibrary(site.store).get(eve).id == eve
        resp = http.post(f"/people/{eve}/forget", headers={"Sec-Fetch-Site": "same-origin"})
        assert resp.status_code == 303
    with pytest.raises(PersonNotFound):
        PeopleLibrary(site.store).get(eve)


def test_html_and_json_on_the_same_paths(site: Site, served: Served) -> None:
    (fay,) = site.ids(site.job(["fay"]))
    browser = {**AUTH, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    with served.client() as http:
        page = http.get(f"/people/{fay}", headers=browser)
        assert page.headers["content-type"].startswith("text/html") and fay in page.text
        assert http.get("/people", headers=browser).text.count('data-library-id="') == 1
        both = {**AUTH, "Accept": "text/html, application/json"}
        assert http.get(f"/people/{fay}", headers=both).json()["id"] == fay
        assert http.get(f"/people/{fay}", headers=AUTH).json()["id"] == fay
        # A refused form of the pages answers a page, with the same status.
        refused = http.post(f"/people/{fay}/rename", headers=AUTH, data={"name": "x" * 300})
        assert refused.status_code == 422 and "invalid_name" in refused.text
        assert refused.headers["content-type"].startswith("text/html")
        refused = http.post(f"/people/{fay}/merge", headers=AUTH, data={"from": fay})
        assert refused.status_code == 422 and "same_person" in refused.text
        moved = http.post(f"/people/{fay}/rename", headers=AUTH, data={"name": "Fay"})
        assert moved.status_code == 303 and moved.headers["location"] == f"/people/{fay}"


def test_library_off(tmp_path: Path) -> None:
    site = Site(tmp_path, FACE_LIBRARY="false")
    with serve(create_app(site.ctx)) as served, served.client(headers=JSON) as http:
        resp = http.get("/people")
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "library_disabled"


def test_a_person_with_1000_appearances_answers_fast(site: Site, served: Served) -> None:
    (gus,) = site.ids(site.job(["gus"]))
    appearances = [
        {"job_id": str(ULID()), "person": 0, "file_name": f"v{i}.mp4", "scenes": [0, 1],
         "first_s": 1.0, "last_s": 9.5, "faces": 4, "thumbnail": None}
        for i in range(999)
    ]  # fmt: skip
    site.library._update(gus, lambda p: (p.appearances.extend(appearances), p)[1])
    with served.client(headers=JSON) as http:
        http.get(f"/people/{gus}")  # warm
        took = []
        for _ in range(5):
            started = time.perf_counter()
            resp = http.get(f"/people/{gus}")
            took.append(time.perf_counter() - started)
            assert resp.status_code == 200 and len(resp.json()["appearances"]) == 1000
    assert min(took) < 0.5, took


@pytest.mark.models
def test_enrolment_over_http(face_models, tmp_path: Path) -> None:
    from vidwatch.library.photos import ModelPhotoFaces

    site = Site(tmp_path, photo_faces=ModelPhotoFaces(face_models))
    with serve(create_app(site.ctx)) as served, served.client(headers=JSON) as http:

        def objects() -> list[str]:
            return sorted(i.key for i in site.store.list("library/"))

        for photo, code in (
            (b"plain text", "not_an_image"),
            (_jpeg_of_nobody(), "no_face"),
            (_jpeg(side_by_side("obama2", "biden", height=300)), "several_faces"),
        ):
            resp = http.post(
                "/people",
                data={"name": "Barack Obama"},
                files=[("photo", ("a.jpg", photo_bytes("obama3"), "image/jpeg")),
                       ("photo", ("b.jpg", photo, "image/jpeg"))],
            )  # fmt: skip
            assert resp.status_code == 422, resp.text
            assert resp.json()["error"]["code"] == code and resp.json()["error"]["photo"] == 1
            assert objects() == []  # nothing stored
        resp = http.post(
            "/people",
            data={"name": "Barack Obama"},
            files=[("photo", ("a.jpg", photo_bytes("obama2"), "image/jpeg")),
                   ("photo", ("b.png", _png(photo_bytes("obama3")), "image/png"))],
        )  # fmt: skip
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["name"] == "Barack Obama" and body["faces"] == 2 and body["id"].startswith("P")
        assert http.get(f"/people/{body['id']}").json()["appearances"] == []


def _jpeg(image) -> bytes:
    import cv2

    return cv2.imencode(".jpg", image)[1].tobytes()


def _png(jpeg: bytes) -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".png", cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))[
        1
    ].tobytes()


def _jpeg_of_nobody() -> bytes:
    import numpy as np

    return _jpeg(np.full((240, 320, 3), (40, 120, 200), np.uint8))
