"""The key layout of the user's document, built in one place.

    jobs/<job_id>/input/source.<ext>
    jobs/<job_id>/frames/{original|seg|det|face}/frame_<N>.jpg
    jobs/<job_id>/analysis/json/frame_<N>.json
    jobs/<job_id>/analysis/toon/frame_<N>.toon
    jobs/<job_id>/analysis/results.json
    jobs/<job_id>/people/person_<k>.jpg
    jobs/<job_id>/analysis/exports/{chapters.vtt,scenes.csv,scenes.edl,timeline.otio}
    jobs/<job_id>/report.html
    jobs/<job_id>/status.json
    jobs/<job_id>/lease.json
    pending/<job_id>                     (a marker while the job is queued or running)
    library/index.json                   (the people library: vidwatch.library.keys)
    library/people/<id>.json, <id>.jpg

``<N>`` is the frame's 0-based index in the decoded video, so a rerun overwrites.

Markers live outside ``jobs/`` on purpose: listing ``pending/`` costs one request per 1,000
pending jobs however many finished job folders the bucket holds, and the ``jobs/`` lifecycle
rule does not touch them (the daemon deletes a marker when its job ends).
"""

from __future__ import annotations

import re

JOBS_PREFIX = "jobs/"
PENDING_PREFIX = "pending/"
IMAGE_KINDS = ("original", "det", "seg", "face")

_JOB_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
_SOURCE = re.compile(r"^jobs/(?P<job_id>[^/]+)/input/source\.(?P<ext>[A-Za-z0-9]{1,8})$")


def is_job_id(value: str) -> bool:
    """A job id is a ULID: 26 characters of Crockford's base32, upper case."""
    return bool(_JOB_ID.match(value))


def normalize_job_id(value: str) -> str | None:
    """The one id rule of intake, keys and the API: a ULID in either case is the same job
    id, written upper case (``01jd3...`` is ``01JD3...``). None for anything else."""
    candidate = value.strip().upper()
    return candidate if is_job_id(candidate) else None


def _check_job_id(job_id: str) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


def job_prefix(job_id: str) -> str:
    return f"{JOBS_PREFIX}{_check_job_id(job_id)}/"


def source_key(job_id: str, ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if not _EXT.match(ext):
        raise ValueError(f"not a file extension: {ext!r}")
    return f"{job_prefix(job_id)}input/source.{ext}"


def input_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}input/"


def frame_image_key(job_id: str, kind: str, frame: int) -> str:
    if kind not in IMAGE_KINDS:
        raise ValueError(f"not an image kind: {kind!r}")
    return f"{job_prefix(job_id)}frames/{kind}/frame_{int(frame)}.jpg"


def frame_json_key(job_id: str, frame: int) -> str:
    return f"{job_prefix(job_id)}analysis/json/frame_{int(frame)}.json"


def frame_toon_key(job_id: str, frame: int) -> str:
    return f"{job_prefix(job_id)}analysis/toon/frame_{int(frame)}.toon"


def person_thumbnail_key(job_id: str, person: int) -> str:
    """The best face crop of person ``<k>`` (ids are per job and anonymous)."""
    if int(person) < 0:
        raise ValueError(f"not a person id: {person!r}")
    return f"{job_prefix(job_id)}people/person_{int(person)}.jpg"


def results_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}analysis/results.json"


EXPORT_FILES = {
    "chapters": "chapters.vtt",
    "scenes_csv": "scenes.csv",
    "edl": "scenes.edl",
    "otio": "timeline.otio",
}
"""results.json ``exports`` names and the file each names under ``analysis/exports/``."""


def export_key(job_id: str, name: str) -> str:
    """The key of one export, by its results.json name (``chapters``, ``scenes_csv``, ...)."""
    if name not in EXPORT_FILES:
        raise ValueError(f"not an export: {name!r}")
    return f"{job_prefix(job_id)}analysis/exports/{EXPORT_FILES[name]}"


def report_key(job_id: str) -> str:
    """The static job page, beside the job's files (its links are relative)."""
    return f"{job_prefix(job_id)}report.html"


def status_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}status.json"


def lease_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}lease.json"


def pending_key(job_id: str) -> str:
    """The marker of a queued or running job."""
    return f"{PENDING_PREFIX}{_check_job_id(job_id)}"


def job_id_of_pending(key: str) -> str | None:
    """The job id of a marker key, or None for anything else under ``pending/``."""
    if not key.startswith(PENDING_PREFIX):
        return None
    job_id = key[len(PENDING_PREFIX) :]
    return job_id if is_job_id(job_id) else None


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def job_id_floor(epoch_s: float) -> str:
    """The smallest job id (ULID) made at ``epoch_s``: its 48-bit millisecond time in ten
    base32 characters, then zeros. Ids sort by creation time, and so do their folders."""
    ms = max(0, min(int(epoch_s * 1000), (1 << 48) - 1))
    time_part = "".join(_CROCKFORD[(ms >> (5 * (9 - i))) & 31] for i in range(10))
    return time_part + "0" * 16


def job_id_time(job_id: str) -> float:
    """The creation time (epoch seconds) written into a job id by whoever made it."""
    _check_job_id(job_id)
    ms = 0
    for char in job_id[:10]:
        ms = (ms << 5) | _CROCKFORD.index(char)
    return ms / 1000.0


def parse_source_key(key: str) -> tuple[str, str] | None:
    """``(job_id, ext)`` for a source key of a well-formed job id, else None."""
    match = _SOURCE.match(key)
    if not match or not is_job_id(match["job_id"]):
        return None
    return match["job_id"], match["ext"].lower()


def job_id_of(key: str) -> str | None:
    """The job id a key belongs to, or None for a key outside ``jobs/<id>/``."""
    if not key.startswith(JOBS_PREFIX):
        return None
    job_id = key[len(JOBS_PREFIX) :].split("/", 1)[0]
    return job_id if is_job_id(job_id) else None


def is_source_key(key: str) -> bool:
    return "/input/" in key and parse_source_key(key) is not None


CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".toon": "text/plain; charset=utf-8",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".ts": "video/mp2t",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".gif": "image/gif",
    ".vtt": "text/vtt; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".edl": "text/plain; charset=utf-8",
    ".otio": "application/json",
    ".html": "text/html; charset=utf-8",
}


def content_type_for(key: str) -> str:
    dot = key.rfind(".")
    return CONTENT_TYPES.get(key[dot:].lower() if dot >= 0 else "", "application/octet-stream")
