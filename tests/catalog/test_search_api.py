"""``GET /search`` and ``GET /jobs`` on the catalog, through a real uvicorn: the JSON
contract, its errors, the pages browsers get, and signed thumbnails that load."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.api_harness import api_app, serve
from tests.catalog.conftest import ALICE, BOB
from vidwatch.api.links import FileLinkSigner
from vidwatch.config import load_settings
from vidwatch.r2.local import LocalStore

JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
HIT_FIELDS = {
    "job_id",
    "file_name",
    "scene",
    "start_s",
    "end_s",
    "labels",
    "people",
    "thumbnail",
    "page",
}


@pytest.fixture
def api(tmp_path: Path, library, open_keeper) -> Iterator[httpx.Client]:
    settings = load_settings(
        {"TEMP_MEDIA_DIR": str(tmp_path / "tmp"), "LOCAL_STORE_DIR": str(tmp_path / "store")}
    )
    signer = FileLinkSigner.from_settings(settings, secret=b"k" * 32)
    store = LocalStore(settings.local_store_dir, url_signer=signer)
    keeper = open_keeper(names=lambda ids: {i: {ALICE: "Alice"}.get(i) for i in ids})
    keeper.rebuild()
    for spec in library.values():  # keyframes that load
        for index in range(len(spec.scenes)):
            frame = int(index * 4 * 25)
            store.put_bytes(f"jobs/{spec.job_id}/frames/original/frame_{frame}.jpg", b"\xff\xd8jpg")
    app = api_app(settings, store, signer=signer, catalog=keeper.catalog)
    with serve(app) as served, served.client() as client:
        yield client


def search(client: httpx.Client, **params: Any) -> dict[str, Any]:
    resp = client.get("/search", params=params, headers=JSON)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_hits_carry_the_contracts_fields_and_thumbnails_that_load(api, library) -> None:
    beach, park = library["beach"].job_id, library["park"].job_id
    body = search(api, label="dog")
    assert set(body) == {"hits", "next"} and body["next"] is None
    assert [(h["job_id"], h["scene"]) for h in body["hits"]] == [(park, 0), (beach, 0)]
    hit = body["hits"][1]
    assert set(hit) == HIT_FIELDS
    assert hit["file_name"] == "Beach Day.mp4" and hit["labels"] == ["dog"]
    assert (hit["start_s"], hit["end_s"]) == (0.0, 4.0)
    assert hit["people"] == [{"id": ALICE, "person": 0, "library_id": ALICE, "name": "Alice"}]
    assert hit["page"] == f"/jobs/{beach}?t=0"
    assert api.get(hit["thumbnail"]).content == b"\xff\xd8jpg"
    assert api.get(hit["thumbnail"].replace("signature=", "signature=0")).status_code == 403
    later = search(api, person=[ALICE, BOB])["hits"][1]
    assert later["page"] == f"/jobs/{beach}?t=4"


def test_search_answers_every_parameter_of_the_issue(api, library) -> None:
    beach, park = library["beach"].job_id, library["park"].job_id

    def found(**params: Any) -> list[tuple[str, int]]:
        return [(h["job_id"], h["scene"]) for h in search(api, **params)["hits"]]

    assert found(q="ALI") == [(park, 1), (beach, 0), (beach, 1)]
    assert found(q="alice surf") == []
    assert found(q="beach surf") == [(beach, 2)]
    assert found(person=[ALICE, BOB], job=beach) == [(beach, 1)]
    assert found(person=[ALICE], to="2000-01-01T00:00:00Z") == []
    assert found(person=[ALICE], **{"from": "2000-01-01"}) == [(park, 1), (beach, 0), (beach, 1)]
    first = search(api, limit=2)
    assert len(first["hits"]) == 2 and first["next"]
    second = search(api, limit=500, cursor=first["next"])
    assert len(first["hits"]) + len(second["hits"]) == 7 and second["next"] is None


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=ten", "from=soon", "to=2026-13-01", "job=x", "cursor=-1"],
)
def test_bad_parameters_answer_422_in_the_apis_error_shape(api, query) -> None:
    resp = api.get(f"/search?{query}", headers=JSON)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid_request" and error["request_id"]
    assert query.split("=")[0] in error["message"]


def test_browsers_get_the_search_page_with_cards_that_play_the_scene(api, library) -> None:
    beach = library["beach"].job_id
    resp = api.get("/search", params={"person": [ALICE, BOB]}, headers=BROWSER)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    links = re.findall(r'<a href="(/jobs/[^"]+)" class="hit-link"', resp.text)
    assert f"/jobs/{beach}?t=4" in links and len(links) == 2
    assert 'action="/search"' in resp.text  # the header's search box
    empty = api.get("/search", params={"q": "nothing-like-this"}, headers=BROWSER)
    assert 'id="no-hits"' in empty.text
    job = api.get(f"/jobs/{beach}?t=4", headers=BROWSER)
    assert job.status_code == 200 and 'data-start="4.0"' in job.text and "#t=4.0" in job.text


def test_the_job_list_is_read_from_the_catalog_with_filters(api, library, store) -> None:
    ids = [s.job_id for s in library.values()][::-1]
    body = api.get("/jobs", headers=JSON).json()
    assert set(body) == {"jobs", "next"} and [j["job_id"] for j in body["jobs"]] == ids
    assert body["jobs"][-1]["file_name"] == "Beach Day.mp4"
    store.delete_many(i.key for i in store.list(f"jobs/{ids[0]}/"))  # not listed: not seen
    assert api.get("/jobs", headers=JSON).json()["jobs"][0]["job_id"] == ids[0]
    assert [j["job_id"] for j in api.get("/jobs?state=failed", headers=JSON).json()["jobs"]] == [
        ids[0]
    ]
    assert [
        j["job_id"] for j in api.get("/jobs?origin=inbox&text=park", headers=JSON).json()["jobs"]
    ] == [library["park"].job_id]
    page = api.get("/jobs?limit=3", headers=JSON).json()
    rest = api.get(f"/jobs?limit=3&cursor={page['next']}", headers=JSON).json()
    assert [j["job_id"] for j in page["jobs"] + rest["jobs"]] == ids and rest["next"] is None
    assert api.get("/jobs?state=finished", headers=JSON).status_code == 422
    html = api.get("/jobs?origin=api")  # no Accept: the page, as before
    assert html.headers["content-type"].startswith("text/html")
    assert re.findall(r'data-job="([^"]+)"', html.text) == [ids[0], library["office"].job_id]
    assert "<option selected>api</option>" in html.text


def test_without_a_catalog_search_is_unavailable(tmp_path: Path) -> None:
    from tests.api.api_harness import local_api

    settings = load_settings(
        {"TEMP_MEDIA_DIR": str(tmp_path / "tmp"), "LOCAL_STORE_DIR": str(tmp_path / "store")}
    )
    app, _ = local_api(settings, lambda spec: None)
    with serve(app) as served, served.client() as client:
        resp = client.get("/search?q=dog")
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "catalog_unavailable"
        assert client.get("/jobs", headers=JSON).json() == {
            "jobs": [],
            "next": None,
            "next_before": None,
        }
