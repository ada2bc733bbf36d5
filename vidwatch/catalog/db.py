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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from vidwatch.catalog import rows as r
from vidwatch.catalog.query import JobsQuery, SearchQuery, fts_match
from vidwatch.catalog.schema import DDL, SCHEMA_VERSION
from vidwatch.errors import VidwatchError

log = structlog.get_logger("vidwatch.catalog")

BUSY_TIMEOUT_MS = 10_000
ENDED = ("completed", "failed")


class CatalogError(VidwatchError):
    code = "catalog_unavailable"


@dataclass(frozen=True)
class SceneHit:
    key: int
    job_id: str
    file_name: str | None
    scene: int
    start_s: float
    end_s: float
    labels: list[str]
    people: list[dict[str, Any]]
    thumbnail: str | None
    """The keyframe image's key in the store (the API signs it)."""


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
            changed = db.execute(
                "UPDATE people SET name = ? WHERE person_id = ?", (name, library_id)
            ).rowcount
            self._retext(db, person_ids=[library_id])
        return changed

    def people_merged(self, into_id: str, from_id: str) -> int:
        """``from_id``'s appearances are ``into_id``'s now, under ``into_id``'s name."""
        if into_id == from_id:
            return 0
        with self._write() as db:
            row = db.execute(
                "SELECT name FROM people WHERE person_id = ? AND name IS NOT NULL LIMIT 1",
                (into_id,),
            ).fetchone()
            name = row[0] if row else None
            if name is None:  # the survivor had no name: it keeps the other's, if any
                row = db.execute(
                    "SELECT name FROM people WHERE person_id = ? AND name IS NOT NULL LIMIT 1",
                    (from_id,),
                ).fetchone()
                name = row[0] if row else None
            changed = db.execute(
                "UPDATE people SET person_id = ?, library_id = ?, name = ? WHERE person_id = ?",
                (into_id, into_id, name, from_id),
            ).rowcount
            db.execute("UPDATE people SET name = ? WHERE person_id = ?", (name, into_id))
            db.execute(
                "INSERT OR IGNORE INTO scene_people(person_id, id) "
                "SELECT ?, id FROM scene_people WHERE person_id = ?",
                (into_id, from_id),
            )
            db.execute("DELETE FROM scene_people WHERE person_id = ?", (from_id,))
            self._retext(db, person_ids=[into_id])
        return changed

    def person_forgotten(self, library_id: str) -> int:
        """Their faces in old jobs lose the link and the name: each becomes that job's
        anonymous person again (``<job_id>:<person>``)."""
        with self._write() as db:
            found = db.execute(
                "SELECT p.job, p.person, j.job_id FROM people p JOIN jobs j ON j.id = p.job "
                "WHERE p.person_id = ?",
                (library_id,),
            ).fetchall()
            scenes = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM scene_people WHERE person_id = ?", (library_id,)
                )
            ]
            for job_key, person, job_id in found:
                own = r.per_job_person_id(job_id, person)
                db.execute(
                    "UPDATE people SET person_id = ?, library_id = NULL, name = NULL, "
                    "thumbnail = NULL WHERE job = ? AND person = ?",
                    (own, job_key, person),
                )
                low, high = job_key << r.SCENE_BITS, ((job_key + 1) << r.SCENE_BITS) - 1
                db.executemany(
                    "INSERT OR IGNORE INTO scene_people(person_id, id) VALUES (?, ?)",
                    [
                        (own, key)
                        for key, cast in db.execute(
                            "SELECT id, people FROM scenes WHERE id BETWEEN ? AND ?", (low, high)
                        ).fetchall()
                        if person in json.loads(cast)
                    ],
                )
            db.execute("DELETE FROM scene_people WHERE person_id = ?", (library_id,))
            self._retext(db, scene_keys=scenes, job_keys=[row[0] for row in found])
        return len(found)

    def _retext(
        self,
        db: sqlite3.Connection,
        *,
        person_ids: list[str] | None = None,
        scene_keys: list[int] | None = None,
        job_keys: list[int] | None = None,
    ) -> None:
        """Write again the search text of scenes and jobs whose people's names changed."""
        scene_keys = list(scene_keys or [])
        job_keys = list(job_keys or [])
        for pid in person_ids or []:
            scene_keys += [
                row[0]
                for row in db.execute("SELECT id FROM scene_people WHERE person_id = ?", (pid,))
            ]
            job_keys += [
                row[0] for row in db.execute("SELECT job FROM people WHERE person_id = ?", (pid,))
            ]
        for key in sorted(set(scene_keys)):
            row = db.execute(
                "SELECT s.job, s.labels, s.people, j.file_name FROM scenes s "
                "JOIN jobs j ON j.id = s.job WHERE s.id = ?",
                (key,),
            ).fetchone()
            if row is None:
                continue
            job_key, labels, cast, file_name = row
            names = self._names(db, job_key)
            text = r.search_words(
                file_name, *json.loads(labels), *r.words_of(names.get(p) for p in json.loads(cast))
            )
            db.execute("DELETE FROM scene_text WHERE rowid = ?", (key,))
            db.execute("INSERT INTO scene_text(rowid, text) VALUES (?, ?)", (key, text))
        for job_key in sorted(set(job_keys)):
            row = db.execute("SELECT job_id, file_name FROM jobs WHERE id = ?", (job_key,))
            found = row.fetchone()
            if found is None:
                continue
            low, high = job_key << r.SCENE_BITS, ((job_key + 1) << r.SCENE_BITS) - 1
            labels = sorted(
                {
                    label
                    for (text,) in db.execute(
                        "SELECT labels FROM scenes WHERE id BETWEEN ? AND ?", (low, high)
                    )
                    for label in json.loads(text)
                }
            )
            names = self._names(db, job_key)
            text = r.search_words(found[1], found[0], *labels, *r.words_of(names.values()))
            db.execute("DELETE FROM job_text WHERE rowid = ?", (job_key,))
            db.execute("INSERT INTO job_text(rowid, text) VALUES (?, ?)", (job_key, text))

    @staticmethod
    def _names(db: sqlite3.Connection, job_key: int) -> dict[int, str | None]:
        return dict(
            db.execute("SELECT person, name FROM people WHERE job = ?", (job_key,)).fetchall()
        )

    # --- search -------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> tuple[list[SceneHit], int | None]:
        """One page of matching scenes, newest job first, then scene order; and the cursor of
        the next page (None at the end)."""
        db = self._reader()
        low, high = r.base_range_of_ms(query.from_ms or 0, query.to_ms or r.MAX_MS)
        if query.cursor is not None:
            high = min(high, query.cursor - 1)
        if query.job is not None:
            found = db.execute("SELECT id FROM jobs WHERE job_id = ?", (query.job,)).fetchone()
            if found is None:
                return [], None
            low = max(low, int(found[0]) << r.SCENE_BITS)
            high = min(high, ((int(found[0]) + 1) << r.SCENE_BITS) - 1)
        if low > high:
            return [], None
        params: dict[str, Any] = {"lo": low, "hi": high, "n": query.limit + 1}
        labels = [label.lower() for label in query.labels]
        people = list(query.people)
        if query.words:
            params["match"] = fts_match(query.words)
            driver = (
                "SELECT rowid AS id FROM scene_text WHERE scene_text MATCH :match "
                "AND rowid BETWEEN :lo AND :hi ORDER BY rowid DESC"
            )
        elif people:
            params["d"] = people.pop(0)
            driver = (
                "SELECT id FROM scene_people WHERE person_id = :d "
                "AND id BETWEEN :lo AND :hi ORDER BY id DESC"
            )
        elif labels:
            params["d"] = labels.pop(0)
            driver = (
                "SELECT id FROM scene_labels WHERE label = :d "
                "AND id BETWEEN :lo AND :hi ORDER BY id DESC"
            )
        else:
            driver = "SELECT id FROM scenes WHERE id BETWEEN :lo AND :hi ORDER BY id DESC"
        where = []
        for i, label in enumerate(labels):
            params[f"l{i}"] = label
            where.append(f"EXISTS (SELECT 1 FROM scene_labels WHERE label = :l{i} AND id = d.id)")
        for i, person in enumerate(people):
            params[f"p{i}"] = person
            where.append(
                f"EXISTS (SELECT 1 FROM scene_people WHERE person_id = :p{i} AND id = d.id)"
            )
        sql = f"SELECT d.id FROM ({driver}) AS d"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " LIMIT :n"
        ids = [row[0] for row in db.execute(sql, params)]
        more = len(ids) > query.limit
        ids = ids[: query.limit]
        return self._hits(db, ids), (ids[-1] if more and ids else None)

    def _hits(self, db: sqlite3.Connection, ids: list[int]) -> list[SceneHit]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        found = {
            row[0]: row
            for row in db.execute(
                "SELECT s.id, s.job, s.scene, s.start_s, s.end_s, s.thumbnail, s.labels, "
                f"s.people, j.job_id, j.file_name FROM scenes s JOIN jobs j ON j.id = s.job "
                f"WHERE s.id IN ({marks})",
                ids,
            )
        }
        jobs = sorted({row[1] for row in found.values()})
        people: dict[tuple[int, int], dict[str, Any]] = {}
        for job_key, person, person_id, library_id, name in db.execute(
            "SELECT job, person, person_id, library_id, name FROM people "
            f"WHERE job IN ({','.join('?' * len(jobs))})",
            jobs,
        ):
            people[(job_key, person)] = {
                "id": person_id,
                "person": person,
                "library_id": library_id,
                "name": name,
            }
        hits = []
        for key in ids:
            row = found.get(key)
            if row is None:
                continue
            _, job_key, scene, start_s, end_s, thumb, labels, cast, job_id, file_name = row
            hits.append(
                SceneHit(
                    key=key,
                    job_id=job_id,
                    file_name=file_name,
                    scene=scene,
                    start_s=start_s,
                    end_s=end_s,
                    labels=json.loads(labels),
                    people=[
                        people[(job_key, p)] for p in json.loads(cast) if (job_key, p) in people
                    ],
                    thumbnail=thumb,
                )
            )
        return hits

    # --- the job list -----------------------------------------------------------------------
    def jobs(self, query: JobsQuery) -> tuple[list[dict[str, Any]], int | None]:
        """One page of jobs, newest first, and the cursor of the next page."""
        db = self._reader()
        params: dict[str, Any] = {"hi": query.cursor - 1 if query.cursor else (1 << 62)}
        params["n"] = query.limit + 1
        if query.words:
            params["match"] = fts_match(query.words)
            source = (
                "(SELECT rowid AS id FROM job_text WHERE job_text MATCH :match "
                "AND rowid <= :hi ORDER BY rowid DESC) AS t JOIN jobs j ON j.id = t.id"
            )
            order = "t.id DESC"
        else:
            source = "jobs j"
            order = "j.id DESC"
        where = ["j.id <= :hi"]
        if query.state:
            params["state"] = query.state
            where.append("j.state = :state")
        if query.origin:
            params["origin"] = query.origin
            where.append("j.origin = :origin")
        sql = (
            "SELECT j.id, j.job_id, j.state, j.stage, j.origin, j.file_name, j.created_at, "
            "j.finished_at, j.duration_s, j.percent, j.error_code, j.duplicate_of, j.scenes, "
            f"j.people, j.updated_at FROM {source} WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT :n"
        )
        rows = db.execute(sql, params).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        out = [
            {
                "job_id": row[1],
                "state": row[2],
                "stage": row[3],
                "origin": row[4],
                "file_name": row[5],
                "created_at": row[6],
                "finished_at": row[7],
                "duration_s": row[8],
                "percent": row[9],
                "error": row[10],
                "duplicate_of": row[11],
                "scenes": row[12],
                "people": row[13],
                "updated_at": row[14],
            }
            for row in rows
        ]
        return out, (int(rows[-1][0]) if more and rows else None)

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
