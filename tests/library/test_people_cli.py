"""``vidwatch people ...`` as a user runs it: a new process on the store's folder, no
daemon; the library it leaves is the one the API and the jobs read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ulid import ULID

from tests.library.faces import Faces, read_results, write_job
from tests.library.photo_video import PHOTOS
from vidwatch.library import PeopleLibrary
from vidwatch.library.link import link_results
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("R2_", "API_"))}
    env.update(
        {
            "LOCAL_STORE_DIR": str(root / "store"),
            "TEMP_MEDIA_DIR": str(root / "tmp"),
            "INBOX_DIR": str(root / "inbox"),
            "LOG_LEVEL": "warning",
        }
    )
    return env


def people(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidwatch.cli", "people", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(root),
    )


def test_list_show_rename_merge_forget(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    library, faces = PeopleLibrary(store), Faces()
    job_id = str(ULID())
    doc = write_job(store, job_id, 2, "party.mp4")
    views = {0: faces.views("ola"), 1: faces.views("pia")}
    a, b = link_results(library, job_id, doc, views, file_name="party.mp4")
    store.put_bytes(keys.results_key(job_id), json.dumps(doc).encode())
    assert a and b

    listed = json.loads(people(tmp_path, "list", "--json").stdout)["people"]
    assert {r["id"] for r in listed} == {a, b} and all(r["name"] is None for r in listed)
    proc = people(tmp_path, "rename", a.lower(), "Ola Nordmann")
    assert proc.returncode == 0, proc.stderr
    assert PeopleLibrary(store).get(a).name == "Ola Nordmann"
    shown = json.loads(people(tmp_path, "show", a, "--json").stdout)
    assert shown["appearances"][0]["file_name"] == "party.mp4"
    assert people(tmp_path, "merge", a, b).returncode == 0
    assert [p["library_id"] for p in read_results(store, job_id)["people"]] == [a, a]
    proc = people(tmp_path, "show", b)
    assert proc.returncode == 1 and "no library person" in proc.stderr
    pruned = json.loads(people(tmp_path, "prune", "--json").stdout)
    assert pruned == {"appearances_dropped": 0, "people_forgotten": 0}  # its job is there
    assert people(tmp_path, "forget", a).returncode == 0
    assert [i.key for i in store.list("library/people/")] == []
    assert people(tmp_path, "list").stdout.strip() == "(nobody yet)"
    bad = people(tmp_path, "rename", "P-not-an-id", "x")
    assert bad.returncode == 1 and "no library person" in bad.stderr


@pytest.mark.models
def test_add_from_photos(tmp_path: Path) -> None:
    bad = people(tmp_path, "add", "Nobody", str(PHOTOS / "LICENSE"))
    assert bad.returncode == 1 and "not_an_image" in bad.stderr
    proc = people(tmp_path, "add", "Barack Obama", str(PHOTOS / "obama2.jpg"), "--json")
    assert proc.returncode == 0, proc.stderr
    added = json.loads(proc.stdout)
    assert added["name"] == "Barack Obama" and added["faces"] == 1
    library = PeopleLibrary(LocalStore(tmp_path / "store"))
    assert library.get(added["id"]).name == "Barack Obama"
    assert library.descriptor_count() == {added["id"]: 1}
