"""The catalog: every job of the store, its scenes, labels and people, in one SQLite file
on this host (``CATALOG_PATH``) that answers ``GET /search`` and ``GET /jobs``. It is
derived from the store and safe to delete: it is rebuilt from the store at the next start.

- ``rows``: what is kept of a job, from its status.json and results.json (pure).
- ``query``: search and list parameters, checked (pure).
- ``db``: the SQLite file (``Catalog``); ``search``: its search and job-list queries;
  ``people_rows``: the people library's changes in its rows.
- ``keeper``: keeping it in step with the store (``CatalogKeeper``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vidwatch.catalog.db import Catalog, CatalogError
from vidwatch.catalog.keeper import CatalogKeeper
from vidwatch.catalog.rows import Names
from vidwatch.config import ConfigError, Settings
from vidwatch.r2.store import ObjectStore

CATALOG_FILE = "catalog.sqlite3"


def catalog_path(settings: Settings) -> Path:
    """``CATALOG_PATH``, else ``catalog.sqlite3`` beside the embedded store's folder (the
    daemon's state folder: ``/var/lib/vidwatch/catalog.sqlite3`` under systemd)."""
    if settings.catalog_path is not None:
        return Path(settings.catalog_path)
    return Path(settings.local_store_dir).absolute().parent / CATALOG_FILE


def open_catalog(
    settings: Settings, store: ObjectStore, *, names: Names | None = None
) -> CatalogKeeper:
    """The catalog of ``store`` (a file of another store is replaced) and its keeper, not
    started. ``names`` resolves library ids to names when a job is indexed (the people
    library's ``names_for``). ConfigError when the file cannot be made."""
    path = catalog_path(settings)
    try:
        catalog = Catalog.open(path, store_id=store.location("jobs/"))
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"CATALOG_PATH={path}: cannot open the catalog: {exc}") from None
    return CatalogKeeper(catalog, store, names=names)


__all__ = ["Catalog", "CatalogError", "CatalogKeeper", "catalog_path", "open_catalog"]
