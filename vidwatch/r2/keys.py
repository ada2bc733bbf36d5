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
    scan/ended.json.gz                   (the ids of ended jobs, written by the full sweep)
    library/index.json                   (the people library: vidwatch.library.keys)
    library/people/<id>.json, <id>.jpg

``<N>`` is the frame's 0-based index in the decoded video, so a rerun overwrites.

Markers live outside ``jobs/`` on purpose: listing ``pending/`` costs one request per 1,000
pending jobs however many finished job folders the bucket holds, and the ``jobs/`` lifecycle
rule does not touch them (the daemon deletes a marker when its job ends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

JOBS_PREFIX = "jobs/"
PENDING_PREFIX = "pending/"
ENDED_RECORD_KEY = "scan/ended.json.gz"
"""The record of ended jobs (``vidwatch.r2.ended``): outside ``jobs/`` and ``pending/``, so
that neither listing sees it and the ``jobs/`` lifecycle rule leaves it alone."""
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
    """``input/source.<ext>``: ``ext`` when it is one of ``VIDEO_TYPES``, else ``bin``."""
    ext = ext.lower().lstrip(".")
    if not _EXT.match(ext):
        raise ValueError(f"not a file extension: {ext!r}")
    return f"{job_prefix(job_id)}input/source.{source_ext(ext)}"


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


VIDEO_TYPES = {
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "ts": "video/mp2t",
    "mts": "video/mp2t",
    "m2ts": "video/mp2t",
    "mpg": "video/mpeg",
    "mpeg": "video/mpeg",
    "ogv": "video/ogg",
    "flv": "video/x-flv",
    "wmv": "video/x-ms-wmv",
    "3gp": "video/3gpp",
    "3g2": "video/3gpp2",
    "mxf": "application/mxf",
}
"""The extensions a source key may keep, and the type each is served with. Nothing here is
a type a browser renders as a document (HTML, SVG, XML)."""

NEUTRAL_SOURCE_EXT = "bin"
"""The extension of a source whose name has none of ``VIDEO_TYPES`` and whose first bytes
name no known container: served as ``application/octet-stream``."""

SOURCE_EXTS = frozenset(VIDEO_TYPES) | {NEUTRAL_SOURCE_EXT}


def source_ext(ext: str | None) -> str:
    """``ext`` (any case, with or without its dot) when it is a video extension of the
    list, else the neutral ``bin``: a user's ``.html`` or ``.svg`` never names a key."""
    ext = (ext or "").lower().lstrip(".")
    return ext if ext in SOURCE_EXTS else NEUTRAL_SOURCE_EXT


def is_accepted_source_key(key: str) -> bool:
    """A source key of the layout whose extension is one a source may keep."""
    parsed = parse_source_key(key)
    return parsed is not None and parsed[1] in SOURCE_EXTS


@dataclass(frozen=True)
class ServedAs:
    """How a key's bytes are answered, decided by what the key is in the layout."""

    kind: str
    """``source``, ``frame_image``, ``person_image``, ``frame_json``, ``frame_toon``,
    ``results``, ``status``, ``lease``, ``export``, ``report``, or ``other``."""
    content_type: str
    attachment: bool
    """Whether a browser should save it rather than show it."""

    def disposition(self, key: str) -> str:
        """The Content-Disposition: ``attachment`` with the key's own file name (ours,
        never a user's) for what need not render, else ``inline``."""
        if not self.attachment:
            return "inline"
        name = key.rsplit("/", 1)[-1]
        safe = "".join(ch for ch in name if ch.isascii() and (ch.isalnum() or ch in "._-"))
        return f'attachment; filename="{safe or "download"}"'


OCTET_STREAM = "application/octet-stream"
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_ID = r"[0-9A-HJKMNP-TV-Z]{26}"
_KINDS: tuple[tuple[re.Pattern[str], ServedAs], ...] = tuple(
    (re.compile(rf"^jobs/{_ID}/{pattern}$"), ServedAs(kind, ctype, attachment))
    for pattern, kind, ctype, attachment in (
        (r"frames/(original|det|seg|face)/frame_[0-9]+\.jpg", "frame_image", "image/jpeg", False),
        (r"people/person_[0-9]+\.jpg", "person_image", "image/jpeg", False),
        (r"analysis/json/frame_[0-9]+\.json", "frame_json", _JSON, False),
        (r"analysis/toon/frame_[0-9]+\.toon", "frame_toon", _TEXT, True),
        (r"analysis/results\.json", "results", _JSON, False),
        (r"status\.json", "status", _JSON, False),
        (r"lease\.json", "lease", _JSON, False),
        (r"analysis/exports/chapters\.vtt", "export", "text/vtt; charset=utf-8", True),
        (r"analysis/exports/scenes\.csv", "export", "text/csv; charset=utf-8", True),
        (r"analysis/exports/scenes\.edl", "export", _TEXT, True),
        (r"analysis/exports/timeline\.otio", "export", _JSON, True),
        (r"report\.html", "report", "text/html; charset=utf-8", False),
    )
)
_INERT_BY_EXT = {".json": _JSON, ".jpg": "image/jpeg"}
"""Types a key outside the layout may get from its extension: the ones vidwatch writes
outside job folders (the people library, the content index, webhook records), none of
which a browser runs."""


def served_as(key: str) -> ServedAs:
    """The one decision of what a key's bytes are served as: the ``/files`` route, the
    stored objects' ``Content-Type`` at upload and presigned links all ask here. It looks
    at what the key is in the layout, never at a name a user chose: a source is a video
    of its (listed) extension or ``application/octet-stream``; anything else a user put
    under ``jobs/`` is ``application/octet-stream`` to be saved."""
    source = _SOURCE.match(key)
    if source is not None and normalize_job_id(source["job_id"]) is not None:
        # A user's lower-case job folder holds a source too (intake_keys).
        video = VIDEO_TYPES.get(source["ext"].lower())
        return ServedAs("source", video or OCTET_STREAM, attachment=video is None)
    for pattern, served in _KINDS:
        if pattern.match(key):
            return served
    dot = key.rfind(".")
    ctype = _INERT_BY_EXT.get(key[dot:].lower() if dot >= 0 else "")
    if ctype is not None:
        return ServedAs("other", ctype, attachment=False)
    return ServedAs("other", OCTET_STREAM, attachment=True)


def content_type_for(key: str) -> str:
    """The Content-Type of ``key`` (see ``served_as``)."""
    return served_as(key).content_type


def stored_type(key: str, given: str | None = None) -> str:
    """The Content-Type a store writes ``key`` with: the layout's for a key of the layout
    (whatever a caller passed), else ``given``, else ``served_as``'s."""
    served = served_as(key)
    if served.kind != "other":
        return served.content_type
    return given or served.content_type
