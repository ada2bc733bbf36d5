"""The catalog database: one SQLite file (WAL: the API reads while jobs are written), derived
from the store and safe to delete.

One connection writes, under a lock (the runner's job ends, the scanner's finds, the
rebuild, the people library's changes); every reading thread has a connection of its own.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import structlog

from vidwatch.catalog import rows as r
from vidwatch.catalog.people_rows import forget_person, merge_people, rename_person
from vidwatch.catalog.query import JobsQuery, SearchQuery
from vidwatch.catalog.schema import DDL, SCHEMA_VERSION
from vidwatch.catalog.search import SceneHit, list_jobs, search_scenes
from vidwatch.errors import VidwatchError

log = structlog.get_logger("vidwatch.catalog")

BUSY_TIMEOUT_MS = 10_000
ENDED = ("completed", "failed")


class CatalogError(VidwatchError):
    code = "catalog_unavailable"


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return db


def _discard(path: Path) -> None:
    """The file and its WAL companions: a -wal left beside a new file must not replay."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class Catalog:
    """Every job of the store, its scenes, labels and people, searchable.

    ``Catalog.open(path, store_id)`` opens or makes the file. A file of another schema or of
    another store, or one SQLite cannot read, is replaced by an empty one, which is then
    ``incomplete`` until a rebuild (``vidwatch.catalog.keeper``) fills it."""

    def __init__(self, path: Path, writer: sqlite3.Connection) -> None:
        self.path = path
        self._writer = writer
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # --- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, store_id: str) -> Catalog:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _discard(path)  # stray -wal/-shm of a deleted file
        try:
            writer = cls._prepare(path, store_id)
        except sqlite3.DatabaseError as exc:
            log.warning("catalog_unreadable", path=str(path), error=str(exc), effect="rebuilt")
            _discard(path)
            writer = cls._prepare(path, store_id)
        return cls(path, writer)

    @staticmethod
    def _prepare(path: Path, store_id: str) -> sqlite3.Connection:
        db = _connect(path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(DDL)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            fresh = not meta
            if meta and (
                meta.get("schema_version") != str(SCHEMA_VERSION) or meta.get("store") != store_id
            ):
                log.warning(
                    "catalog_replaced",
                    path=str(path),
                    schema_version=meta.get("schema_version"),
                    store=meta.get("store"),
                    now_store=store_id,
                )
                db.close()
                _discard(path)
                db = _connect(path)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(DDL)
                fresh = True
            if fresh:
                with db:
                    db.executemany(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                        [
                            ("schema_version", str(SCHEMA_VERSION)),
                            ("store", store_id),
                            ("complete", "0"),
                        ],
                    )
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()
        with self._readers_lock:
            for db in self._readers:
                db.close()
            self._readers.clear()

    # --- connections --------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path)
            db.execute("PRAGMA query_only=1")
            self._local.db = db
            with self._readers_lock:
                self._readers.append(db)
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.rollback()
                raise
            db.commit()

    # --- meta ----------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @property
    def complete(self) -> bool:
        """Whether every job of the store was indexed (a rebuild ran to its end)."""
        return self._meta("complete") == "1"

    def set_complete(self, complete: bool) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('complete', ?)",
                ("1" if complete else "0",),
            )
            if complete:
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('rebuilt_at', ?)",
                    (str(time.time()),),
                )

    def size_bytes(self) -> int:
        """The file's size, its write-ahead log folded in first."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return self.path.stat().st_size

    def counts(self) -> dict[str, int]:
        db = self._reader()
        return {
            "jobs": db.execute("SELECT count(*) FROM jobs").fetchone()[0],
            "scenes": db.execute("SELECT count(*) FROM scenes").fetchone()[0],
        }

    # --- jobs ------------------------------------------------------------------------------------
    def job_ids(self) -> set[str]:
        return {row[0] for row in self._reader().execute("SELECT job_id FROM jobs")}

    def job_state(self, job_id: str) -> str | None:
        row = self._reader().execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,))
        found = row.fetchone()
        return found[0] if found else None

    def jobs_created_before(self, ms: int) -> list[str]:
        return [
            row[0]
            for row in self._reader().execute(
                "SELECT job_id FROM jobs WHERE created_ms < ? ORDER BY id", (ms,)
            )
        ]

    def put(self, docs: r.JobDocs) -> bool:
        """Index one job, replacing what the catalog held of it. False (nothing written) when
        the catalog holds a newer version of its manifest (``updated_at``): a slow reader
        never undoes a later write."""
        job = docs.job
        with self._write() as db:
            found = db.execute(
                "SELECT id, updated_at FROM jobs WHERE job_id = ?", (job.job_id,)
            ).fetchone()
            if found is not None:
                held = found[1]
                if held and job.updated_at and held > job.updated_at:
                    return False
                job_key = int(found[0])
                self._delete_contents(db, job_key)
            else:
                job_key = self._free_job_key(db, job.created_ms)
            self._insert(db, job_key, docs)
        return True

    @staticmethod
    def _free_job_key(db: sqlite3.Connection, created_ms: int) -> int:
        for slot in range(r.SLOTS):
            key = r.job_base(created_ms, slot) >> r.SCENE_BITS
            if db.execute("SELECT 1 FROM jobs WHERE id = ?", (key,)).fetchone() is None:
                return key
        raise CatalogError(f"more than {r.SLOTS} jobs created in one millisecond")

    def _insert(self, db: sqlite3.Connection, job_key: int, docs: r.JobDocs) -> None:
        job = docs.job
        db.execute(
            "INSERT OR REPLACE INTO jobs(id, job_id, state, stage, origin, file_name, "
            "created_at, created_ms, updated_at, finished_at, duration_s, percent, error_code, "
            "duplicate_of, scenes, people, has_results) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_key,
                job.job_id,
                job.state,
                job.stage,
                job.origin,
                job.file_name,
                job.created_at,
                job.created_ms,
                job.updated_at,
                job.finished_at,
                job.duration_s,
                job.percent,
                job.error_code,
                job.duplicate_of,
                len(docs.scenes),
                len(docs.people),
                int(docs.has_results),
            ),
        )
        base = job_key << r.SCENE_BITS
        person_ids = {p.person: p.person_id for p in docs.people}
        names = {p.person: p.name for p in docs.people}
        db.executemany(
            "INSERT INTO people(job, person, person_id, library_id, name, thumbnail, first_s, "
            "last_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    job_key,
                    p.person,
                    p.person_id,
                    p.library_id,
                    p.name,
                    p.thumbnail,
                    p.first_s,
                    p.last_s,
                )
                for p in docs.people
            ],
        )
        scene_rows, label_rows, people_rows, text_rows = [], [], [], []
        for s in docs.scenes:
            key = r.scene_key(base, s.scene)
            cast = [p for p in s.people if p in person_ids]
            scene_rows.append(
                (
                    key,
                    job_key,
                    s.scene,
                    s.start_s,
                    s.end_s,
                    s.keyframe,
                    s.thumbnail,
                    json.dumps(list(s.labels)),
                    json.dumps(cast),
                )
            )
            label_rows += [(label.lower(), key) for label in set(s.labels)]
            people_rows += [(person_ids[p], key) for p in set(cast)]
            text_rows.append(
                (key, r.search_words(job.file_name, *s.labels, *(names[p] for p in cast)))
            )
        db.executemany("INSERT INTO scenes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", scene_rows)
        db.executemany("INSERT OR IGNORE INTO scene_labels VALUES (?, ?)", label_rows)
        db.executemany("INSERT OR IGNORE INTO scene_people VALUES (?, ?)", people_rows)
        db.executemany("INSERT INTO scene_text(rowid, text) VALUES (?, ?)", text_rows)
        db.executemany(
            "INSERT INTO label_segments VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (job_key, s.label, s.scene, s.start_s, s.end_s, s.samples, s.max_confidence)
                for s in docs.segments
            ],
        )
        labels = sorted({label for s in docs.scenes for label in s.labels})
        db.execute(
            "INSERT INTO job_text(rowid, text) VALUES (?, ?)",
            (
                job_key,
                r.search_words(job.file_name, job.job_id, *labels, *r.words_of(names.values())),
            ),
        )

    @staticmethod
    def _delete_contents(db: sqlite3.Connection, job_key: int) -> None:
        """Everything of a job but its ``jobs`` row."""
        low, high = job_key << r.SCENE_BITS, ((job_key + 1) << r.SCENE_BITS) - 1
        scenes = db.execute(
            "SELECT id, labels FROM scenes WHERE id BETWEEN ? AND ?", (low, high)
        ).fetchall()
        db.executemany(
            "DELETE FROM scene_labels WHERE label = ? AND id = ?",
            [(label.lower(), key) for key, labels in scenes for label in json.loads(labels)],
        )
        person_ids = [
            row[0] for row in db.execute("SELECT person_id FROM people WHERE job = ?", (job_key,))
        ]
        keys = [key for key, _ in scenes]
        db.executemany(
            "DELETE FROM scene_people WHERE person_id = ? AND id = ?",
            [(pid, key) for pid in set(person_ids) for key in keys],
        )
        db.execute("DELETE FROM scene_text WHERE rowid BETWEEN ? AND ?", (low, high))
        db.execute("DELETE FROM scenes WHERE id BETWEEN ? AND ?", (low, high))
        db.execute("DELETE FROM people WHERE job = ?", (job_key,))
        db.execute("DELETE FROM label_segments WHERE job = ?", (job_key,))
        db.execute("DELETE FROM job_text WHERE rowid = ?", (job_key,))

    def remove(self, job_ids: Iterable[str]) -> int:
        """Forget jobs (removed from the store); the number that were in the catalog."""
        removed = 0
        with self._write() as db:
            for job_id in job_ids:
                found = db.execute("SELECT id FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
                if found is None:
                    continue
                self._delete_contents(db, int(found[0]))
                db.execute("DELETE FROM jobs WHERE id = ?", (found[0],))
                removed += 1
        return removed

    # --- the people library's changes ----------------------------------------------------------
    def person_renamed(self, library_id: str, name: str | None) -> int:
        """A library person's new name, at once in every scene they are in; the number of
        job people changed."""
        with self._write() as db:
            return rename_person(db, library_id, name)

    def people_merged(self, into_id: str, from_id: str) -> int:
        """``from_id``'s appearances are ``into_id``'s now, under ``into_id``'s name."""
        if into_id == from_id:
            return 0
        with self._write() as db:
            return merge_people(db, into_id, from_id)

    def person_forgotten(self, library_id: str) -> int:
        """Their faces in old jobs lose the link and the name: each becomes that job's
        anonymous person again (``<job_id>:<person>``)."""
        with self._write() as db:
            return forget_person(db, library_id)

    # --- search and the job list ------------------------------------------------------------
    def search(self, query: SearchQuery) -> tuple[list[SceneHit], int | None]:
        """One page of matching scenes, newest job first, then scene order; and the cursor of
        the next page (None at the end)."""
        return search_scenes(self._reader(), query)

    def jobs(self, query: JobsQuery) -> tuple[list[dict[str, Any]], int | None]:
        """One page of jobs, newest first, and the cursor of the next page."""
        return list_jobs(self._reader(), query)

    def job_key(self, job_id: str) -> int | None:
        row = self._reader().execute("SELECT id FROM jobs WHERE job_id = ?", (job_id,))
        found = row.fetchone()
        return int(found[0]) if found else None

    def people_of(self, job_id: str) -> list[dict[str, Any]]:
        return [
            {"person": row[0], "id": row[1], "library_id": row[2], "name": row[3]}
            for row in self._reader().execute(
                "SELECT p.person, p.person_id, p.library_id, p.name FROM people p "
                "JOIN jobs j ON j.id = p.job WHERE j.job_id = ? ORDER BY p.person",
                (job_id,),
            )
        ]

    def label_segments_of(self, job_id: str) -> list[dict[str, Any]]:
        return [
            {
                "label": row[0],
                "scene": row[1],
                "start_s": row[2],
                "end_s": row[3],
                "samples": row[4],
                "max_confidence": row[5],
            }
            for row in self._reader().execute(
                "SELECT s.label, s.scene, s.start_s, s.end_s, s.samples, s.max_confidence "
                "FROM label_segments s JOIN jobs j ON j.id = s.job WHERE j.job_id = ? "
                "ORDER BY s.scene, s.start_s, s.label",
                (job_id,),
            )
        ]
