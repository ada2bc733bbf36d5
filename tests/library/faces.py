"""Synthetic face descriptors with known truth: each identity is a random 128-d point,
its views points about 0.3 away (dlib's same-person distances run 0.1 to 0.55), and two
identities about 1.0 apart (dlib's different people: 0.65 and more)."""

from __future__ import annotations

import json

import numpy as np

from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore


class Faces:
    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres: dict[str, np.ndarray] = {}

    def identity(self, who: str) -> np.ndarray:
        if who not in self.centres:
            self.centres[who] = self.rng.normal(0, 1.0 / np.sqrt(2 * 128), 128).astype(np.float32)
        return self.centres[who]

    def views(self, who: str, n: int = 3, spread: float = 0.15) -> np.ndarray:
        """``n`` views of ``who``, each about ``spread`` from the identity (so about
        ``spread * sqrt(2)`` from each other)."""
        noise = self.rng.normal(0, spread / np.sqrt(128), (n, 128)).astype(np.float32)
        return self.identity(who)[None, :] + noise


def write_job(store: ObjectStore, job_id: str, people: int, file_name: str = "clip.mp4") -> dict:
    """A completed job's results.json (its people only) and its people's face crops."""
    entries = []
    for k in range(people):
        thumb = keys.person_thumbnail_key(job_id, k)
        crop = b"\xff\xd8\xff face crop " + str(k).encode()
        store.put_bytes(thumb, crop, content_type="image/jpeg")
        entries.append(
            {
                "person": k,
                "faces": 3,
                "frames": [0, 10],
                "scenes": [k],
                "first_s": float(k),
                "last_s": float(k) + 2.5,
                "thumbnail": thumb,
                "library_id": None,
            }
        )
    doc = {"schema_version": 1, "job_id": job_id, "people": entries}
    store.put_bytes(keys.results_key(job_id), json.dumps(doc).encode())
    return doc


def read_results(store: ObjectStore, job_id: str) -> dict:
    return json.loads(store.get_bytes(keys.results_key(job_id)))
