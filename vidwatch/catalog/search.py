"""The catalog's reads that answer ``GET /search`` and ``GET /jobs``: one page of matching
scenes (the full-text index, the label and people tables, each key range a job's scenes)
and one page of jobs, each with the cursor of the next page."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from vidwatch.catalog import rows as r
from vidwatch.catalog.query import JobsQuery, SearchQuery, fts_match


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


def search_scenes(db: sqlite3.Connection, query: SearchQuery) -> tuple[list[SceneHit], int | None]:
    """One page of matching scenes, newest job first, then scene order; and the cursor of
    the next page (None at the end)."""
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
        where.append(f"EXISTS (SELECT 1 FROM scene_people WHERE person_id = :p{i} AND id = d.id)")
    sql = f"SELECT d.id FROM ({driver}) AS d"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " LIMIT :n"
    ids = [row[0] for row in db.execute(sql, params)]
    more = len(ids) > query.limit
    ids = ids[: query.limit]
    return _hits(db, ids), (ids[-1] if more and ids else None)


def _hits(db: sqlite3.Connection, ids: list[int]) -> list[SceneHit]:
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
                people=[people[(job_key, p)] for p in json.loads(cast) if (job_key, p) in people],
                thumbnail=thumb,
            )
        )
    return hits


def list_jobs(db: sqlite3.Connection, query: JobsQuery) -> tuple[list[dict[str, Any]], int | None]:
    """One page of jobs, newest first, and the cursor of the next page."""
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
