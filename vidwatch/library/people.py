"""The library of people: one person, one stable id, across every job of the store.

``PeopleLibrary`` is the only code that writes under ``library/`` (layout in
``vidwatch.library.keys``). A job links its people at its end (``link_job``): each person's
descriptors are matched against the index (``vidwatch.library.index``); within
FACE_MATCH_THRESHOLD of a library person it is that person, else a new unnamed one. Users
name people (``rename``), enrol them from photos (``enrol``), ``merge`` two and ``forget``
one; ``names_for`` resolves ids to names when a job's results are read.

Concurrency: membership (who exists, with which descriptors) changes only by conditional
writes of the index, retried from a fresh read when they lose; a person's record
(``library/people/<id>.json``: name, appearances) is changed the same way, by If-Match on
its own ETag. So two daemons that end jobs with the same stranger at once agree on one
library person: the second to write the index finds the first's new person in it.

Every successful change is told to ``on_change`` (a ``LibraryChange``), for the catalog.
Descriptors never reach a log line.
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import structlog

from vidwatch.errors import VidwatchError
from vidwatch.library import keys as lkeys
from vidwatch.library.index import MAX_DESCRIPTORS, Index
from vidwatch.library.jobs import Names, relink_job
from vidwatch.r2 import keys as jobs_keys
from vidwatch.r2.store import ObjectNotFound, ObjectStore, PreconditionFailed
from vidwatch.times import utc_time

log = structlog.get_logger("vidwatch.library")

WRITE_TRIES = 20
"""Conditional writes lost in a row before giving up (each loss means another writer won)."""
JOB_VIEWS = 4
"""Descriptors a job may add to a library person it links (views the library lacked)."""
ENROLMENT_VIEWS = 8
"""Descriptors kept beyond MAX_DESCRIPTORS for enrolment photos (a user's explicit views)."""
MAX_NAME_CHARS = 200
_READERS = 8


class PersonNotFound(VidwatchError):
    code = "person_not_found"

    def __init__(self, person_id: str) -> None:
        super().__init__(f"no library person {person_id}")
        self.person_id = person_id


class LibraryConflict(VidwatchError):
    """A conditional write kept losing (WRITE_TRIES times): retry later."""

    code = "library_busy"


class InvalidName(VidwatchError):
    code = "invalid_name"


ChangeKind = Literal["renamed", "merged", "forgotten", "linked"]


@dataclass(frozen=True)
class LibraryChange:
    """One change of the library, told to the listener after it succeeded.

    - ``renamed``: ``library_id`` has the name ``name`` now (also a person named by an
      enrolment);
    - ``merged``: ``other_id`` was merged into ``library_id`` and no longer exists;
    - ``forgotten``: ``library_id`` no longer exists, nor its descriptors and face crops;
    - ``linked``: job ``job_id`` shows ``library_id``."""

    kind: ChangeKind
    library_id: str
    name: str | None = None
    other_id: str | None = None
    job_id: str | None = None


@dataclass(frozen=True)
class JobPerson:
    """A job's person as ``link_job`` takes it: its results.json entry and the descriptors
    its job kept (the per-job identities' exemplars)."""

    entry: dict[str, Any]
    descriptors: np.ndarray


@dataclass(frozen=True)
class EnrolFace:
    """The one face of an enrolment photo: its descriptor and a JPEG crop of it."""

    descriptor: np.ndarray
    crop_jpeg: bytes | None = None


@dataclass
class Person:
    """A library person as ``library/people/<id>.json`` holds it."""

    id: str
    name: str | None = None
    created_at: str = ""
    thumbnail: str | None = None
    enrolled: int = 0
    """Faces from enrolment photos."""
    appearances: list[dict[str, Any]] = field(default_factory=list)
    """``{job_id, person, file_name, scenes, first_s, last_s, faces, thumbnail}``."""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Person:
        return cls(
            id=str(doc["id"]),
            name=doc.get("name"),
            created_at=str(doc.get("created_at") or ""),
            thumbnail=doc.get("thumbnail"),
            enrolled=int(doc.get("enrolled") or 0),
            appearances=list(doc.get("appearances") or []),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "thumbnail": self.thumbnail,
            "enrolled": self.enrolled,
            "appearances": self.appearances,
        }

    @property
    def job_ids(self) -> list[str]:
        return sorted({str(a.get("job_id")) for a in self.appearances})


def clean_name(name: str | None) -> str | None:
    """A name as stored: trimmed, None for blank; InvalidName for control characters or
    more than MAX_NAME_CHARS."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidName("a name is a string")
    name = " ".join(name.split())
    if not name:
        return None
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(f"a name has at most {MAX_NAME_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidName("a name holds no control characters")
    return name


def _now() -> str:
    return utc_time(micros=False)


class PeopleLibrary:
    """The library on ``store``; ``threshold`` is FACE_MATCH_THRESHOLD."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        threshold: float = 0.6,
        on_change: Callable[[LibraryChange], None] | None = None,
    ) -> None:
        self.store = store
        self.threshold = threshold
        self.on_change = on_change
        self._cached: Index | None = None
        self._cache_lock = threading.Lock()

    # --- reads ------------------------------------------------------------------------------
    def get(self, person_id: str) -> Person:
        """The person; PersonNotFound for an unknown (or malformed) id."""
        found = self._read(person_id)
        if found is None:
            raise PersonNotFound(person_id)
        return found[0]

    def list(
        self, *, before: str | None = None, limit: int = 50
    ) -> tuple[builtins.list[Person], str | None]:
        """A page of people, newest first: at most ``limit`` people created before the id
        ``before``, and the cursor of the next page (None on the last)."""
        listed = (lkeys.person_id_of(info.key) for info in self.store.list(lkeys.PEOPLE_PREFIX))
        ids = sorted((pid for pid in listed if pid is not None), reverse=True)
        if before:
            ids = [i for i in ids if i < before.strip().upper()]
        page = ids[: limit + 1]
        people = [p for p in self._read_many(page[:limit]) if p is not None]
        return people, (page[limit - 1] if len(page) > limit else None)

    def names_for(self, ids: Iterable[str]) -> dict[str, str | None]:
        """The current name (or None) of each id still in the library; an id absent from
        the answer is gone (forgotten, merged away, or never was)."""
        wanted = sorted({i for i in ids if lkeys.is_person_id(i)})
        return {p.id: p.name for p in self._read_many(wanted) if p is not None}

    def descriptor_count(self) -> dict[str, int]:
        """Descriptors held per person (the index), for checks and the CLI."""
        return {pid: int(d.shape[0]) for pid, d in self._read_index().people.items()}

    # --- a job's people ---------------------------------------------------------------------
    def link_job(
        self, job_id: str, people: Sequence[JobPerson], *, file_name: str | None = None
    ) -> builtins.list[str | None]:
        """Link each of a job's people to the library (a new unnamed person where none is
        within the threshold); returns their library ids, None for a person without
        descriptors. Records each appearance in the person's record."""
        assigned: list[str | None] = []
        created: set[str] = set()

        def link(index: Index) -> bool:
            nonlocal assigned, created
            assigned, created = [], set()
            # Every person is matched against the index as read, before any is added (an
            # addition would rebuild the search matrix for the next).
            for jp in people:
                if jp.descriptors is None or len(jp.descriptors) == 0:
                    assigned.append(None)
                    continue
                pid, distance = index.nearest(jp.descriptors)
                if pid is None or distance >= self.threshold:
                    pid = lkeys.new_person_id()
                    created.add(pid)
                assigned.append(pid)
            dirty = bool(created)
            for jp, pid in zip(people, assigned, strict=True):
                if pid is not None:
                    have = index.people[pid].shape[0] if pid in index.people else 0
                    limit = min(MAX_DESCRIPTORS, have + JOB_VIEWS)
                    dirty |= index.add(pid, jp.descriptors, limit=limit) > 0
            return dirty

        self._change_index(link, f"while job {job_id} linked")
        for jp, pid in zip(people, assigned, strict=True):
            if pid is not None:
                self._add_appearance(pid, job_id, jp.entry, file_name, new=pid in created)
        log.info(
            "library_job_linked",
            job_id=job_id,
            people=len(people),
            linked=sum(p is not None for p in assigned),
            new=len(created),
        )
        for pid in dict.fromkeys(p for p in assigned if p is not None):
            self._tell(LibraryChange("linked", pid, job_id=job_id))
        return assigned

    def _add_appearance(
        self, pid: str, job_id: str, entry: dict[str, Any], file_name: str | None, *, new: bool
    ) -> None:
        appearance = {
            "job_id": job_id,
            "person": entry.get("person"),
            "file_name": file_name,
            "scenes": list(entry.get("scenes") or []),
            "first_s": entry.get("first_s"),
            "last_s": entry.get("last_s"),
            "faces": entry.get("faces"),
            "thumbnail": entry.get("thumbnail"),
        }
        copied: list[bool] = []

        def change(person: Person) -> Person:
            person.appearances = [
                a
                for a in person.appearances
                if (a.get("job_id"), a.get("person")) != (job_id, appearance["person"])
            ]
            person.appearances.append(appearance)
            if person.thumbnail is None and not copied:
                copied.append(self._copy_thumbnail(pid, appearance["thumbnail"]))
            if person.thumbnail is None and copied and copied[0]:
                person.thumbnail = lkeys.thumbnail_key(pid)
            return person

        # Created by us, or by another job linking to the person its job just created.
        self._update(pid, change, create=True)

    def _copy_thumbnail(self, pid: str, job_thumbnail: Any) -> bool:
        if not isinstance(job_thumbnail, str):
            return False
        try:
            data = self.store.get_bytes(job_thumbnail)
        except ObjectNotFound:
            return False
        self.store.put_bytes(lkeys.thumbnail_key(pid), data, content_type="image/jpeg")
        return True

    # --- naming ------------------------------------------------------------------------------
    def enrol(self, name: str, faces: Sequence[EnrolFace]) -> tuple[Person, int]:
        """Name a person from photos (one face each, already checked): the photos' nearest
        library person, when within the threshold and unnamed or of the same name, gets the
        name and the faces; else a new person. Returns the person and the faces enrolled."""
        clean = clean_name(name)
        if clean is None:
            raise InvalidName("a person enrolled from photos needs a name")
        if not faces:
            raise ValueError("enrolment needs at least one face")
        descriptors = np.stack([np.asarray(f.descriptor, np.float32) for f in faces])
        target, new = "", False

        def add(index: Index) -> bool:
            nonlocal target, new
            pid, distance = index.nearest(descriptors)
            target, new = lkeys.new_person_id(), True
            if pid is not None and distance < self.threshold:
                found = self._read(pid)
                existing = found[0].name if found else None
                if found and (existing is None or existing.casefold() == clean.casefold()):
                    target, new = pid, False
            have = index.people[target].shape[0] if target in index.people else 0
            index.add(target, descriptors, limit=max(have, MAX_DESCRIPTORS) + ENROLMENT_VIEWS)
            return True

        self._change_index(add, "during the enrolment")
        crop = next((f.crop_jpeg for f in faces if f.crop_jpeg), None)

        def change(person: Person) -> Person:
            person.name = clean
            person.enrolled += len(faces)
            if person.thumbnail is None and crop is not None:
                key = lkeys.thumbnail_key(person.id)
                self.store.put_bytes(key, crop, content_type="image/jpeg")
                person.thumbnail = key
            return person

        person = self._update(target, change, create=True)
        log.info("library_person_enrolled", library_id=target, new=new, faces=len(faces))
        self._tell(LibraryChange("renamed", target, name=clean))
        return person, len(faces)

    def rename(self, person_id: str, name: str | None) -> Person:
        """Give (or, with None or blank, take away) the person's name."""
        clean = clean_name(name)

        def change(person: Person) -> Person:
            person.name = clean
            return person

        person = self._update(person_id, change)
        log.info("library_person_renamed", library_id=person_id, named=clean is not None)
        self._tell(LibraryChange("renamed", person_id, name=clean))
        return person

    def merge(self, into_id: str, from_id: str) -> Person:
        """``from_id`` becomes ``into_id``: its descriptors, appearances (old jobs' results
        rewritten) and, where ``into_id`` has none, its name and thumbnail. ``from_id`` is
        gone afterwards."""
        if into_id == from_id:
            raise ValueError("a person cannot be merged into itself")
        gone = self.get(from_id)
        self.get(into_id)

        def move(index: Index) -> bool:
            moved = index.remove(from_id)
            if moved is None:
                return False
            index.add(into_id, moved, limit=MAX_DESCRIPTORS + ENROLMENT_VIEWS)
            return True

        self._change_index(move, "during the merge")

        def change(person: Person) -> Person:
            seen = {(a.get("job_id"), a.get("person")) for a in person.appearances}
            person.appearances += [
                a for a in gone.appearances if (a.get("job_id"), a.get("person")) not in seen
            ]
            person.name = person.name or gone.name
            person.enrolled += gone.enrolled
            if person.thumbnail is None and gone.thumbnail is not None:
                try:
                    data = self.store.get_bytes(gone.thumbnail)
                    key = lkeys.thumbnail_key(person.id)
                    self.store.put_bytes(key, data, content_type="image/jpeg")
                    person.thumbnail = key
                except ObjectNotFound:
                    pass
            return person

        person = self._update(into_id, change)
        for job_id in gone.job_ids:
            relink_job(self.store, job_id, {from_id: into_id})
        self.store.delete_many([lkeys.thumbnail_key(from_id), lkeys.person_key(from_id)])
        log.info("library_people_merged", library_id=into_id, merged=from_id)
        self._tell(LibraryChange("merged", into_id, name=person.name, other_id=from_id))
        return person

    def forget(self, person_id: str) -> Person:
        """Delete the person: their descriptors (index), record and thumbnail, and in every
        job they appear in the link and the face crop. Returns what was deleted."""
        person = self.get(person_id)
        self._change_index(lambda index: index.remove(person_id) is not None, "while forgetting")
        for job_id in person.job_ids:
            relink_job(self.store, job_id, {person_id: None}, drop_thumbnails=True)
        # Appearances that landed meanwhile (a job linking as the index changed) are read
        # again before the record goes.
        late = self._read(person_id)
        if late is not None:
            for job_id in set(late[0].job_ids) - set(person.job_ids):
                relink_job(self.store, job_id, {person_id: None}, drop_thumbnails=True)
        self.store.delete_many([lkeys.thumbnail_key(person_id), lkeys.person_key(person_id)])
        log.info("library_person_forgotten", library_id=person_id, jobs=len(person.job_ids))
        self._tell(LibraryChange("forgotten", person_id))
        return person

    # --- retention ---------------------------------------------------------------------------
    def prune(self) -> dict[str, int]:
        """Drop appearances in jobs that are gone (retention, the bucket's lifecycle rule),
        and forget a person left with no appearance, no name and no enrolment photo: a
        stranger's descriptors live no longer than the videos they were seen in. A job is
        gone when the job listing lacks it and its results.json is absent (checked again
        per job, so a job linking meanwhile keeps its appearance)."""
        present = set(self.store.list_job_ids())
        checked: dict[str, bool] = {}

        def gone(job_id: str) -> bool:
            if job_id in present:
                return False
            if job_id not in checked:
                checked[job_id] = self.store.head(jobs_keys.results_key(job_id)) is None
            return checked[job_id]

        dropped = forgotten = 0
        for info in builtins.list(self.store.list(lkeys.PEOPLE_PREFIX)):
            pid = lkeys.person_id_of(info.key)
            found = self._read(pid) if pid else None
            if pid is None or found is None:
                continue
            person = found[0]
            stale = {str(a.get("job_id")) for a in person.appearances if gone(str(a.get("job_id")))}
            if not stale:
                continue
            left = [a for a in person.appearances if str(a.get("job_id")) not in stale]
            if not left and person.name is None and person.enrolled == 0:
                self.forget(pid)
                forgotten += 1
                continue

            def change(p: Person, stale: set[str] = stale) -> Person:
                p.appearances = [a for a in p.appearances if str(a.get("job_id")) not in stale]
                return p

            self._update(pid, change)
            dropped += len(person.appearances) - len(left)
        log.info("library_pruned", appearances_dropped=dropped, people_forgotten=forgotten)
        return {"appearances_dropped": dropped, "people_forgotten": forgotten}

    # --- the objects -------------------------------------------------------------------------
    def _read_index(self) -> Index:
        """The index as stored now, parsed again only when its ETag changed."""
        info = self.store.head(lkeys.INDEX_KEY)
        if info is None:
            return Index()
        with self._cache_lock:
            cached = self._cached
        if cached is not None and cached.etag == info.etag:
            return cached.copy()
        try:
            data = self.store.get_bytes(lkeys.INDEX_KEY)
        except ObjectNotFound:
            return Index()
        # The ETag is the one HEAD saw: if the object changed in between, the next
        # conditional write fails and reads again.
        index = Index.from_bytes(data, info.etag)
        with self._cache_lock:
            self._cached = index
        return index.copy()

    def _change_index(self, change: Callable[[Index], bool], during: str) -> None:
        """Read-change-write the index under If-Match, again from a fresh read whenever
        another writer won; ``change`` edits the index it is given and says whether there is
        anything to write. ``during`` ends the LibraryConflict's message."""
        for _ in range(WRITE_TRIES):
            index = self._read_index()
            if not change(index):
                return
            try:
                self._write_index(index)
                return
            except PreconditionFailed:
                continue
        raise LibraryConflict(f"the library index kept changing {during}")

    def _write_index(self, index: Index) -> None:
        info = self.store.put_bytes(
            lkeys.INDEX_KEY,
            index.to_bytes(),
            content_type="application/json",
            if_none_match=index.etag is None,
            if_match=index.etag,
        )
        stored = index.copy()
        stored.etag = info.etag
        with self._cache_lock:
            self._cached = stored

    def _read(self, person_id: str) -> tuple[Person, str] | None:
        """The person and the ETag it was read under, or None."""
        if not lkeys.is_person_id(person_id):
            return None
        info = self.store.head(lkeys.person_key(person_id))
        if info is None:
            return None
        try:
            doc = json.loads(self.store.get_bytes(lkeys.person_key(person_id)))
        except ObjectNotFound:
            return None
        return Person.from_json(doc), info.etag

    def _read_many(self, ids: Sequence[str]) -> builtins.list[Person | None]:
        def one(pid: str) -> Person | None:
            try:
                return Person.from_json(json.loads(self.store.get_bytes(lkeys.person_key(pid))))
            except ObjectNotFound:
                return None

        if len(ids) <= 1:
            return [one(i) for i in ids]
        with ThreadPoolExecutor(min(_READERS, len(ids))) as pool:
            return builtins.list(pool.map(one, ids))

    def _update(
        self, person_id: str, change: Callable[[Person], Person], *, create: bool = False
    ) -> Person:
        """Read-change-write the person's record under If-Match (If-None-Match where
        ``create`` and absent), again from a fresh read whenever another writer won."""
        if not lkeys.is_person_id(person_id):
            raise PersonNotFound(person_id)
        for _ in range(WRITE_TRIES):
            found = self._read(person_id)
            if found is None and not create:
                raise PersonNotFound(person_id)
            person = found[0] if found else Person(id=person_id, created_at=_now())
            person = change(person)
            try:
                self.store.put_bytes(
                    lkeys.person_key(person_id),
                    json.dumps(person.to_json(), indent=1, ensure_ascii=False).encode(),
                    content_type="application/json",
                    if_none_match=found is None,
                    if_match=found[1] if found else None,
                )
                return person
            except PreconditionFailed:
                continue
        raise LibraryConflict(f"library person {person_id} kept changing")

    def _tell(self, change: LibraryChange) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(change)
        except Exception:  # a listener's failure is not the library's
            log.exception("library_listener_failed", kind=change.kind, library_id=change.library_id)


def no_names(ids: list[str]) -> dict[str, str | None]:
    """FACE_LIBRARY=false: no library, every person reads unlinked."""
    return {}


def names_of(library: PeopleLibrary | None) -> Names:
    """What resolves a job's library ids to names when its results are read: the library's
    ``names_for``, or with the library off (None) nothing."""
    return library.names_for if library is not None else no_names
