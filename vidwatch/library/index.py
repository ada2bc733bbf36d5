"""The library's descriptor index: every library person's face descriptors in one object,
``library/index.json``, and the nearest-neighbour match against it.

Why one object: a job that meets a stranger must either find the library person another
daemon made for the same stranger a moment ago, or make one itself, never both. Every
change of membership (a new person, a merge, a forget) is a conditional write of this one
object (If-Match its ETag, or If-None-Match when there is none yet): the loser of a race
reads the winner's index again and matches against it, so two daemons ending jobs with the
same stranger at once make one library person.

Descriptors are kept as float16 (base64) to halve the object: dlib's descriptor values are
about +-0.3, and float16 moves a distance by less than 0.002 (the threshold is 0.6).
Matching is a brute-force search with numpy: 10,000 people with 8 descriptors each is one
(faces x 80,000) distance matrix (see ``bench/library_match.py`` for the figures).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INDEX_VERSION = 1
DIMENSIONS = 128
MAX_DESCRIPTORS = 8
"""Descriptors kept per library person (enrolment photos first, then views from videos)."""
NEW_VIEW_DISTANCE = 0.1
"""A descriptor is worth keeping only where it is at least this far from every kept one."""


def encode(descriptors: np.ndarray) -> str:
    return base64.b64encode(np.asarray(descriptors, dtype="<f2").tobytes()).decode()


def decode(text: str) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(text), dtype="<f2")
    return raw.reshape(-1, DIMENSIONS).astype(np.float32)


@dataclass
class Index:
    """Library person id -> that person's descriptors (an ``n x 128`` float32 array)."""

    people: dict[str, np.ndarray] = field(default_factory=dict)
    etag: str | None = None
    """The ETag of the object this was read from (None: there was none)."""
    _matrix: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None = field(
        default=None, repr=False
    )

    @classmethod
    def from_bytes(cls, data: bytes, etag: str | None) -> Index:
        doc = json.loads(data)
        people = {pid: decode(entry["d"]) for pid, entry in (doc.get("people") or {}).items()}
        return cls(people=people, etag=etag)

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "version": INDEX_VERSION,
            "people": {
                pid: {"n": int(d.shape[0]), "d": encode(d)}
                for pid, d in sorted(self.people.items())
            },
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def copy(self) -> Index:
        """A copy to change (its own dict of people) that shares the search matrix, built
        here once, until the copy changes: each read of an unchanged index skips the build."""
        self._stacked()
        return Index(people=dict(self.people), etag=self.etag, _matrix=self._matrix)

    def changed(self) -> None:
        self._matrix = None

    def _stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """All descriptors in one matrix, their squared norms, the owner (position in
        ``ids``) of each row; built once per change, reused by every ``nearest``."""
        if self._matrix is None:
            ids = list(self.people)
            if ids:
                matrix = np.ascontiguousarray(
                    np.concatenate([self.people[i] for i in ids]), dtype=np.float32
                )
                owners = np.repeat(np.arange(len(ids)), [self.people[i].shape[0] for i in ids])
            else:
                matrix, owners = np.zeros((0, DIMENSIONS), np.float32), np.zeros(0, int)
            self._matrix = (matrix, np.einsum("ij,ij->i", matrix, matrix), owners, ids)
        return self._matrix

    def nearest(self, descriptors: np.ndarray) -> tuple[str | None, float]:
        """The library person nearest to any of ``descriptors`` (one face's views), and the
        distance: the smallest over every pair of their descriptors and ours."""
        matrix, norms, owners, ids = self._stacked()
        if not ids or len(descriptors) == 0:
            return None, float("inf")
        query = np.asarray(descriptors, np.float32).reshape(-1, DIMENSIONS)
        # |a-b|^2 = |a|^2 + |b|^2 - 2ab: one matrix product for every pair.
        sq = matrix @ query.T  # rows x queries, then turned into squared distances in place
        sq *= -2.0
        sq += np.einsum("ij,ij->i", query, query)[None, :]
        per_row = sq.min(axis=1)
        per_row += norms
        best = int(np.argmin(per_row))
        return ids[owners[best]], float(np.sqrt(max(float(per_row[best]), 0.0)))

    def add(self, person_id: str, descriptors: np.ndarray, *, limit: int = MAX_DESCRIPTORS) -> int:
        """Keep those of ``descriptors`` that add a view, up to ``limit`` per person; returns
        how many were kept."""
        kept = self.people.get(person_id, np.zeros((0, DIMENSIONS), np.float32))
        added = 0
        for d in np.asarray(descriptors, np.float32).reshape(-1, DIMENSIONS):
            if kept.shape[0] >= limit:
                break
            nearest = float(np.min(np.linalg.norm(kept - d, axis=1))) if kept.shape[0] else 9.0
            if nearest < NEW_VIEW_DISTANCE:
                continue
            kept = np.concatenate([kept, d[None, :]])
            added += 1
        self.people[person_id] = kept
        self.changed()
        return added

    def remove(self, person_id: str) -> np.ndarray | None:
        self.changed()
        return self.people.pop(person_id, None)
