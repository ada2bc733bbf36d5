"""The library's side of the jobs: the people of a job with their names resolved, and the
rewrite of old jobs' ``results.json`` when a library person is merged or forgotten.

``results.json`` keeps ``people[*].library_id``, never the name: a name is looked up when the
document is read (``with_names``), so a rename shows everywhere at once with nothing to
rewrite. Only a merge (the id changes) and a forget (the link, and the face crop, go) touch
old jobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog

from vidwatch.pipeline.documents import PersonEntry
from vidwatch.pipeline.views import NamedPerson
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, ObjectStore

log = structlog.get_logger("vidwatch.library")

Names = Callable[[list[str]], dict[str, str | None]]
"""``names(ids)``: the current name of every id still in the library (absent: gone)."""


def _current(ids: Iterable[str], names: Names) -> dict[str, str | None]:
    """The current name of each of ``ids`` still in the library (absent: gone)."""
    wanted = sorted(set(ids))
    return names(wanted) if wanted else {}


def named(people: Sequence[PersonEntry], names: Names) -> list[NamedPerson]:
    """A job's people with ``library_id`` and ``name`` current: an id no longer in the
    library (forgotten, or merged while this job was linking) reads as null."""
    found = _current((p.library_id for p in people if p.library_id is not None), names)
    out = []
    for p in people:
        lid = p.library_id if p.library_id in found else None
        current = {"library_id": lid, "name": found[lid] if lid is not None else None}
        out.append(NamedPerson.model_validate(p.to_json() | current))
    return out


def with_names(people: Any, names: Names) -> list[dict[str, Any]]:
    """``named`` for results.json's list as data (as the webhooks and the library read
    it)."""
    if not isinstance(people, list):
        return []
    entries = [dict(p) for p in people if isinstance(p, dict)]
    linked = (p["library_id"] for p in entries if isinstance(p.get("library_id"), str))
    found = _current(linked, names)
    for p in entries:
        lid = p.get("library_id")
        if isinstance(lid, str) and lid in found:
            p["name"] = found[lid]
        else:
            p["library_id"], p["name"] = None, None
    return entries


def relink_job(
    store: ObjectStore,
    job_id: str,
    mapping: Mapping[str, str | None],
    *,
    drop_thumbnails: bool = False,
) -> list[int]:
    """Rewrite ``library_id`` in ``job_id``'s results.json by ``mapping`` (old id -> new id,
    or None to unlink). ``drop_thumbnails``: the unlinked people's face crops
    (``jobs/<id>/people/person_<k>.jpg``) are deleted and their ``thumbnail`` set to null.
    Returns the job's persons that changed; a job whose results are gone changes nothing."""
    if not keys.is_job_id(job_id):
        return []
    try:
        doc = json.loads(store.get_bytes(keys.results_key(job_id)))
    except ObjectNotFound:
        return []
    changed: list[int] = []
    doomed: list[str] = []
    for person in doc.get("people") or []:
        lid = person.get("library_id") if isinstance(person, dict) else None
        if not isinstance(lid, str) or lid not in mapping:
            continue
        person["library_id"] = mapping[lid]
        changed.append(int(person.get("person", -1)))
        if mapping[lid] is None and drop_thumbnails:
            thumb = person.get("thumbnail")
            if isinstance(thumb, str) and keys.job_id_of(thumb) == job_id:
                doomed.append(thumb)
            person["thumbnail"] = None
    if not changed:
        return []
    # The crops go first: a failure then leaves a link to a missing image, never a crop
    # that nothing points at any more.
    store.delete_many(doomed)
    store.put_bytes(
        keys.results_key(job_id),
        json.dumps(doc, indent=1, ensure_ascii=False).encode(),
        content_type="application/json",
    )
    log.info("library_job_relinked", job_id=job_id, persons=changed, crops_deleted=len(doomed))
    return changed


def job_people(store: ObjectStore, results_key: str, names: Names) -> list[dict[str, Any]]:
    """A finished job's people as its ``job.completed`` event tells them: person, library
    id and name (current when the event is made), faces and times."""
    doc = json.loads(store.get_bytes(results_key))
    return [
        {
            "person": p.get("person"),
            "library_id": p.get("library_id"),
            "name": p.get("name"),
            "faces": p.get("faces"),
            "first_s": p.get("first_s"),
            "last_s": p.get("last_s"),
        }
        for p in with_names(doc.get("people"), names)
    ]
