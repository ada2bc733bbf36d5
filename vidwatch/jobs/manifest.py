"""status.json: the manifest beside every job's artifacts. Its field names are a contract.

``Manifest`` is the document itself, a typed model (``docs/schemas/status.schema.json`` is
generated from it): adding a field is one line in the model that holds it. Every write
replaces the manifest whole; fields written by another version are kept on a rewrite.

The job's code reads and sets a few nested fields by flat names (``manifest.source_key``
for ``source.key``, ``manifest.frames_done`` for ``progress.frames_done``; see
``_FLAT``), and may pass them to the constructor the same way.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.config import JsonDict

from vidwatch.errors import VidwatchError
from vidwatch.pipeline.documents import Document, FaceSummary
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectInfo, ObjectNotFound, ObjectStore
from vidwatch.times import utc_time

SCHEMA_VERSION = 1
State = Literal["queued", "running", "completed", "failed"]
Stage = Literal[
    "queued", "staging", "waiting", "uploading_source", "scenes", "analyzing", "writing", "done"
]
Origin = Literal["api", "inbox", "bucket", "cli"]
STATES: tuple[str, ...] = get_args(State)
STAGES: tuple[str, ...] = get_args(Stage)


class ManifestError(VidwatchError, ValueError):
    """A status.json that is not a manifest (not JSON, or fields of the wrong type)."""

    code = "manifest_unreadable"


def utc_now() -> str:
    return utc_time()


def utc_at(ts: float) -> str:
    """Epoch seconds in the manifest's time format."""
    return utc_time(ts)


_TIME: JsonDict = {"format": "date-time"}


class _Part(Document):
    model_config = ConfigDict(validate_assignment=True)


class Progress(_Part):
    frames_done: int = Field(0, ge=0)
    """Frames decoded so far."""
    frames_total: int | None = Field(None, ge=0)
    """Frames in the video: the container's count while running, the decoded count at the end."""
    percent: float = Field(0.0, ge=0, le=100)
    """100 only when completed; at most 99.9 before."""


class SourceInfo(_Part):
    key: str | None = None
    """Where the source is in the store (``jobs/<id>/input/source.<ext>``)."""
    origin: Origin = "api"
    """How the job arrived."""
    filename: str | None = None
    """The name the user gave the file."""
    bytes: int | None = Field(None, ge=0)
    sha256: str | None = None
    """Of the staged copy; the stored object is verified against it."""


class Worker(_Part):
    """The process that wrote this version of the manifest."""

    host: str
    pid: int

    @classmethod
    def here(cls) -> Worker:
        return cls(host=socket.gethostname(), pid=os.getpid())


class ErrorInfo(_Part):
    """Why a job failed: a stable ``code`` and a message for people."""

    code: str
    message: str


class Cleanup(_Part):
    local_source_policy: bool | None = None
    """Whether the staged local copy is deleted after a verified upload (the request's
    override, else CLEANUP_LOCAL_VIDEO_AFTER_UPLOAD_DEFAULT)."""
    local_source_deleted: bool | None = None


class JobSummary(_Part):
    """A short summary of results.json, for listings."""

    scenes: int = Field(ge=0)
    frames_analyzed: int = Field(ge=0)
    labels: list[str]
    faces: FaceSummary
    people: int = Field(0, ge=0)
    """Persons told apart among the faces (0 with identities off)."""
    duration_s: float | None = None
    """The video's duration from its container (the jobs list shows it)."""


# Flat names the job's code uses for nested fields: name -> (part, field).
_FLAT: dict[str, tuple[str, str]] = {
    "origin": ("source", "origin"),
    "filename": ("source", "filename"),
    "source_key": ("source", "key"),
    "source_bytes": ("source", "bytes"),
    "source_sha256": ("source", "sha256"),
    "frames_done": ("progress", "frames_done"),
    "frames_total": ("progress", "frames_total"),
    "cleanup_local_source": ("cleanup", "local_source_policy"),
    "local_source_deleted": ("cleanup", "local_source_deleted"),
}


def _flat(name: str) -> property:
    part, inner = _FLAT[name]

    def get(self: Any) -> Any:
        return getattr(getattr(self, part), inner)

    def set_(self: Any, value: Any) -> None:
        setattr(getattr(self, part), inner, value)

    return property(get, set_, doc=f"``{part}.{inner}``")


# What the states promise, beyond each field's type (JSON Schema only: the job's code
# passes through states that do not hold them yet, e.g. completed before its summary).
_STATE_RULES: JsonDict = {
    "allOf": [
        {
            "if": {"properties": {"state": {"const": "failed"}}},
            "then": {"properties": {"error": {"type": "object", "required": ["code", "message"]}}},
        },
        {
            "if": {"properties": {"state": {"const": "completed"}}},
            "then": {
                "required": ["summary"],
                "properties": {"results_key": {"type": "string"}, "error": {"type": "null"}},
            },
        },
    ]
}


class _FlatNames:
    """The flat names of nested fields, as properties (a plain class: they are no fields)."""

    origin = _flat("origin")
    filename = _flat("filename")
    source_key = _flat("source_key")
    source_bytes = _flat("source_bytes")
    source_sha256 = _flat("source_sha256")
    frames_done = _flat("frames_done")
    frames_total = _flat("frames_total")
    cleanup_local_source = _flat("cleanup_local_source")
    local_source_deleted = _flat("local_source_deleted")


class Manifest(_Part, _FlatNames):
    """status.json. ``percent``, ``worker`` and ``results_key`` are derived: ``to_json``
    sets them before every write. A failed job has an ``error``; a completed one a
    ``results_key`` and a ``summary``."""

    model_config = ConfigDict(json_schema_extra=_STATE_RULES)

    schema_version: int = SCHEMA_VERSION
    job_id: str
    state: State = "queued"
    stage: Stage = "queued"
    progress: Progress = Field(default_factory=Progress)
    source: SourceInfo = Field(default_factory=SourceInfo)
    created_at: str = Field(default_factory=utc_now, json_schema_extra=_TIME)
    started_at: str | None = Field(None, json_schema_extra=_TIME)
    updated_at: str = Field(default_factory=utc_now, json_schema_extra=_TIME)
    finished_at: str | None = Field(None, json_schema_extra=_TIME)
    worker: Worker = Field(default_factory=Worker.here)
    error: ErrorInfo | None = None
    """Set when ``state`` is ``failed``."""
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    """What the job met and lived with, or what earlier attempts met: ``{code, message}``,
    with ``attempt`` where it belongs to one (see jobs.run)."""
    cleanup: Cleanup = Field(default_factory=Cleanup)
    attempts: int = Field(0, ge=0)
    """Runs started, this one included."""
    attempt_history: list[dict[str, Any]] = Field(default_factory=list)
    """One entry per attempt: ``{attempt, worker, started_at, ended_at, outcome}``; outcome
    ``completed``, ``failed``, ``interrupted`` (a stop sent it back to the queue),
    ``abandoned`` (its daemon died or lost the lease; seen by the next attempt), or None
    while it runs."""
    results_key: str | None = None
    """Key of results.json once completed: the job's own, or for a duplicate the earlier
    job's."""
    duplicate_of: str | None = None
    """The earlier job whose results this one answers (same content key), if any."""
    content_key: str | None = None
    """sha256 over the source's sha256 and the result-changing settings (see jobs.dedupe)."""
    reanalyze: bool = False
    """Asked to be analysed afresh even when a job of the same content exists."""
    notifications: list[dict[str, Any]] = Field(default_factory=list)
    """Webhook delivery state, one entry per event and endpoint (kept by jobs.webhooks)."""
    summary: JobSummary | None = Field(None, exclude_if=lambda v: v is None)
    """Present once completed."""
    results_summary: dict[str, Any] | None = Field(None, exclude=True, repr=False)
    """results.json's ``summary`` of the run that just ended (not written: for events)."""

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_names(cls, data: Any) -> Any:
        """``Manifest(job_id=..., source_key=...)`` means ``source.key``."""
        if not isinstance(data, dict) or not _FLAT.keys() & data.keys():
            return data
        data = dict(data)
        for name in _FLAT.keys() & data.keys():
            part, inner = _FLAT[name]
            nested = data.get(part)
            if isinstance(nested, _Part):
                nested = nested.model_dump()
            data[part] = {**(nested or {}), inner: data.pop(name)}
        return data

    def percent(self) -> float:
        if self.state == "completed":
            return 100.0
        if not self.frames_total:
            return 0.0
        share: float = round(min(99.9, 100.0 * self.frames_done / self.frames_total), 1)
        return share

    def to_json(self) -> dict[str, Any]:
        """The document to write, its derived fields set for this moment and this process."""
        self.progress.percent = self.percent()
        self.worker = Worker.here()
        self.results_key = self.current_results_key()
        return self.model_dump(mode="json")

    def current_results_key(self) -> str | None:
        """Where the results are: this job's own, or the earlier job's for a duplicate."""
        if self.state != "completed":
            return None
        return keys.results_key(self.duplicate_of or self.job_id)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Manifest:
        """The manifest in ``doc``, keeping every field it does not know. ManifestError when
        it is not one."""
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            job = doc.get("job_id") if isinstance(doc, dict) else None
            raise ManifestError(f"status.json of job {job} is not a manifest: {exc}") from None


def worker_id() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


TERMINAL = ("completed", "failed")
"""The states a job ends in: the one list of them (the runner, intake, retention and
``run_job`` read it)."""

BAD_JOB_KEY = "bad_job_key"
BAD_SOURCE_KEY = "bad_source_key"
INTAKE_CODES = (BAD_JOB_KEY, BAD_SOURCE_KEY)
"""Failures of intake itself: the job was never run, and a corrected upload is taken."""


def failed_at_intake(manifest: Manifest) -> bool:
    """Whether the job was refused at intake (never run): a corrected upload is taken."""
    error = manifest.error
    return manifest.state == "failed" and error is not None and error.code in INTAKE_CODES


def write_manifest(
    store: ObjectStore, manifest: Manifest, *, if_match: str | None = None
) -> ObjectInfo:
    """Write the manifest whole, and keep the job's pending marker (``pending/<job_id>``)
    in step: a ``queued`` manifest gets its marker first (intake, or a job put back at a
    stop), a ``completed`` or ``failed`` one loses it after. A crash between the two writes
    leaves a marker too many, never one too few: the scanner deletes a marker whose job
    ended. ``if_match``: only over this ETag of status.json (PreconditionFailed else)."""
    from vidwatch.r2.pending import clear_pending, mark_pending

    manifest.updated_at = utc_now()
    body = json.dumps(manifest.to_json(), indent=2).encode()
    if manifest.state == "queued":
        mark_pending(store, manifest.job_id, origin=manifest.origin)
    info = store.put_bytes(
        keys.status_key(manifest.job_id), body, content_type="application/json", if_match=if_match
    )
    if manifest.state in TERMINAL:
        clear_pending(store, manifest.job_id)
    return info


def read_manifest(store: ObjectStore, job_id: str) -> Manifest | None:
    """The job's manifest, None when it has none; ManifestError when it is unreadable."""
    try:
        data = store.get_bytes(keys.status_key(job_id))
    except ObjectNotFound:
        return None
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"status.json of job {job_id} is not JSON: {exc}") from None
    return Manifest.from_json(doc)
