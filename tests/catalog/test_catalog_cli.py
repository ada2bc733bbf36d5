"""``vidwatch catalog rebuild`` by hand, as a user runs it: a subprocess on the settings of
the environment, the catalog beside the local store by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.catalog.conftest import ALICE, BOB
from vidwatch.catalog import Catalog
from vidwatch.catalog.query import parse_search


def _rebuild(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidwatch.cli", "catalog", "rebuild", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rebuild_by_hand_indexes_the_store_beside_it(library, store, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("R2_", "CATALOG_", "LOCAL_"))}
    env.update({"LOCAL_STORE_DIR": str(store.root), "TEMP_MEDIA_DIR": str(tmp_path / "tmp")})
    proc = _rebuild(env, "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    path = tmp_path / "catalog.sqlite3"
    assert figures["catalog"] == str(path) and figures["jobs"] == figures["indexed"] == 4
    catalog = Catalog.open(path, store_id=store.location("jobs/"))
    try:
        assert catalog.complete
        found, _ = catalog.search(parse_search(person=[ALICE, BOB]))
        assert len(found) == 2
    finally:
        catalog.close()
    elsewhere = tmp_path / "state" / "cat.db"
    proc = _rebuild({**env, "CATALOG_PATH": str(elsewhere)})
    assert proc.returncode == 0, proc.stderr
    assert "4 of 4 jobs indexed" in proc.stdout and elsewhere.is_file()


def test_a_catalog_path_that_cannot_be_made_is_a_setting_to_fix(store, tmp_path) -> None:
    from vidwatch.catalog import open_catalog
    from vidwatch.config import ConfigError, load_settings

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = load_settings(
        {
            "LOCAL_STORE_DIR": str(store.root),
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            "CATALOG_PATH": str(blocker / "catalog.sqlite3"),
        }
    )
    try:
        open_catalog(settings, store)
    except ConfigError as exc:
        assert "CATALOG_PATH=" in str(exc)
    else:
        raise AssertionError("a catalog under a file opened")
