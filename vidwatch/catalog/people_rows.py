"""The people library's changes in the catalog (a rename, a merge, a forget): the rows of
every job's people and scenes that name them, and the search text written again."""

from __future__ import annotations

import json
import sqlite3

from vidwatch.catalog import rows as r


def rename_person(db: sqlite3.Connection, library_id: str, name: str | None) -> int:
    """A library person's new name, at once in every scene they are in; the number of
    job people changed."""
    changed = db.execute(
        "UPDATE people SET name = ? WHERE person_id = ?", (name, library_id)
    ).rowcount
    retext(db, person_ids=[library_id])
    return changed


def merge_people(db: sqlite3.Connection, into_id: str, from_id: str) -> int:
    """``from_id``'s appearances are ``into_id``'s now, under ``into_id``'s name."""
    if into_id == from_id:
        return 0
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
    retext(db, person_ids=[into_id])
    return changed


def forget_person(db: sqlite3.Connection, library_id: str) -> int:
    """Their faces in old jobs lose the link and the name: each becomes that job's
    anonymous person again (``<job_id>:<person>``)."""
    found = db.execute(
        "SELECT p.job, p.person, j.job_id FROM people p JOIN jobs j ON j.id = p.job "
        "WHERE p.person_id = ?",
        (library_id,),
    ).fetchall()
    scenes = [
        row[0]
        for row in db.execute("SELECT id FROM scene_people WHERE person_id = ?", (library_id,))
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
    retext(db, scene_keys=scenes, job_keys=[row[0] for row in found])
    return len(found)


def retext(
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
            row[0] for row in db.execute("SELECT id FROM scene_people WHERE person_id = ?", (pid,))
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
        names = _names(db, job_key)
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
        names = _names(db, job_key)
        text = r.search_words(found[1], found[0], *labels, *r.words_of(names.values()))
        db.execute("DELETE FROM job_text WHERE rowid = ?", (job_key,))
        db.execute("INSERT INTO job_text(rowid, text) VALUES (?, ?)", (job_key, text))


def _names(db: sqlite3.Connection, job_key: int) -> dict[int, str | None]:
    return dict(db.execute("SELECT person, name FROM people WHERE job = ?", (job_key,)).fetchall())
