"""Bucket keys that do not follow the layout: never ignored in silence.

The layout is ``jobs/<ULID>/input/source.<ext>``. What a user uploads elsewhere under
``jobs/`` is taken where the intent is certain, and otherwise answered with a ``failed``
status.json where the user will look, a log line (``bucket_key_refused``) and a metric
(``vidwatch_bucket_keys_total``):

- ``jobs/<ulid in lower case>/input/source.<ext>``: the same job id (one id rule for intake,
  keys and the API: ``keys.normalize_job_id``). The job runs as ``<ULID>``: its status.json
  and artifacts are under ``jobs/<ULID>/``, its ``source.key`` names the object where the
  user put it, and ``GET /status/<ulid>`` answers in either case. Several daemons may see
  the upload at once: the job's lease runs it once, and every manifest of it names that key
  from its first write on, so the others recognise it as taken and write nothing.
- ``jobs/<not a ULID>/...`` (``jobs/holiday-2026/input/source.mkv``): ``failed`` with code
  ``bad_job_key`` in ``jobs/holiday-2026/status.json``, the message naming the key to use.
- ``jobs/<ULID>/input/<other name>`` (``.../input/video.mkv``) and no ``source.<ext>``:
  ``failed`` with code ``bad_source_key`` in ``jobs/<ULID>/status.json``; once a
  ``source.<ext>`` appears there, the job is taken up. So is ``source.<ext>`` with an
  extension no source may keep (``source.html``, ``source.svg``): a source's key names a
  video type of ``keys.VIDEO_TYPES``, or ``source.bin``, so that nothing a user uploads is
  ever served as a document.

A refusal's ``source.filename`` is the found key's last part, cleaned by the name rules
every intake path shares (``jobs.names``), with a ``filename_changed`` warning when the
rules changed it.

The decisions are pure functions of the keys (``decide_folder``, ``expected_key``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from prometheus_client import Counter

from vidwatch import metrics
from vidwatch.config import Settings
from vidwatch.jobs.manifest import BAD_JOB_KEY, BAD_SOURCE_KEY, Manifest, read_manifest, utc_now
from vidwatch.jobs.names import clean_filename
from vidwatch.jobs.staging import JobSpec, job_spec_for_store_source, new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore

log = structlog.get_logger("vidwatch.intake.bucket")

BUCKET_KEYS = Counter(
    "vidwatch_bucket_keys_total",
    "Bucket objects under jobs/ outside the layout, by what intake did with them",
    ["outcome"],
    registry=metrics.REGISTRY,
)


def expected_key(job_id: str, found_key: str) -> str:
    """The key the user should have used for the object ``found_key``: its extension when
    a source may keep it, ``mp4`` when it has none, else ``bin``."""
    return f"{keys.JOBS_PREFIX}{job_id}/input/source.{_expected_ext(found_key)}"


def _expected_ext(found_key: str) -> str:
    name = found_key.rsplit("/", 1)[-1]
    return keys.source_ext(name.rsplit(".", 1)[-1]) if "." in name else "mp4"


def _refusal_message(found_key: str, key_to_use: str) -> str:
    parsed = keys.parse_source_key(found_key)
    if parsed is not None and not keys.is_accepted_source_key(found_key):
        listed = ", ".join(sorted(keys.VIDEO_TYPES))
        return (
            f"{found_key} is not a source key: a source keeps a video extension ({listed}) "
            f"or {keys.NEUTRAL_SOURCE_EXT} for any other video, never .{parsed[1]}; upload "
            f"the video again as {key_to_use}"
        )
    return (
        f"{found_key} is not a source key: name the video {key_to_use} (upload it again "
        "under that name)"
    )


@dataclass(frozen=True)
class FolderVerdict:
    outcome: str
    """``take`` (a lower-case ULID with its source), ``refuse`` (write a failed status),
    ``wait`` (nothing to judge yet, or already answered)."""
    job_id: str | None = None
    source_key: str | None = None
    code: str | None = None
    message: str | None = None


def decide_folder(name: str, object_keys: list[str]) -> FolderVerdict:
    """What to do with ``jobs/<name>/`` (a folder whose name is not a canonical job id)
    holding ``object_keys``."""
    status = f"{keys.JOBS_PREFIX}{name}/status.json"
    if not object_keys or status in object_keys:
        return FolderVerdict("wait")  # empty, or already answered
    job_id = keys.normalize_job_id(name)
    first = object_keys[0]
    if job_id is None:
        example = expected_key(new_job_id(), first)
        return FolderVerdict(
            "refuse",
            code=BAD_JOB_KEY,
            message=f"{first} is not in a job folder: {name!r} is not a job id (a "
            f"26-character ULID). Upload the video as jobs/<ULID>/input/source."
            f"{_expected_ext(first)} with a new ULID, e.g. {example}",
        )
    prefix = f"{keys.JOBS_PREFIX}{name}/input/"
    for key in object_keys:
        if key.startswith(prefix) and _is_source_name(key[len(prefix) :]):
            return FolderVerdict("take", job_id=job_id, source_key=key)
    return FolderVerdict(
        "refuse",
        job_id=job_id,
        code=BAD_SOURCE_KEY,
        message=_refusal_message(first, expected_key(job_id, first)),
    )


def source_name_problem(job_id: str, input_keys: list[str]) -> FolderVerdict | None:
    """For a canonical job folder without ``input/source.<ext>``: a refusal when its
    ``input/`` holds something else (``video.mkv``), None when it holds nothing."""
    if not input_keys:
        return None
    first = input_keys[0]
    return FolderVerdict(
        "refuse",
        job_id=job_id,
        code=BAD_SOURCE_KEY,
        message=_refusal_message(first, expected_key(job_id, first)),
    )


def _is_source_name(name: str) -> bool:
    return keys.is_accepted_source_key(f"{keys.JOBS_PREFIX}{'0' * 26}/input/{name}")


class BadKeys:
    """Answers the folders of ``jobs/`` that are not canonical job ids, and the job
    folders whose input is misnamed. Remembers what it answered (bounded by the bucket)."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self._answered: set[str] = set()

    def folders(self, names: list[str], offer: Callable[[JobSpec, str], int]) -> int:
        """Judge each folder name; offer the ones to take. The number of jobs submitted."""

        submitted = 0
        for name in names:
            if name in self._answered:
                continue
            found = [info.key for info in self.store.list(f"{keys.JOBS_PREFIX}{name}/")]
            verdict = decide_folder(name, found)
            if verdict.outcome == "wait":
                if found:
                    self._answered.add(name)
                continue
            if verdict.outcome == "refuse":
                self.refuse(name, verdict, found[0])
                continue
            assert verdict.job_id is not None and verdict.source_key is not None
            manifest = read_manifest(self.store, verdict.job_id)
            if manifest is not None:
                # The job exists under its canonical id: it is the scanner's from now on,
                # unless that job is another upload's (then this one is refused). A manifest
                # without a source key yet says neither: looked at again next poll (every
                # manifest of a job run from the store names its source from the first write
                # on, so another daemon that took this upload first is recognised).
                if manifest.source_key is None:
                    continue
                if manifest.source_key != verdict.source_key:
                    self.refuse(
                        name,
                        FolderVerdict(
                            "refuse",
                            job_id=verdict.job_id,
                            code=BAD_JOB_KEY,
                            message=f"{verdict.source_key}: job {verdict.job_id} already "
                            f"exists with the source {manifest.source_key}; upload this video "
                            f"with a new ULID, e.g. {expected_key(new_job_id(), found[0])}",
                        ),
                        found[0],
                    )
                else:
                    self._answered.add(name)
                continue
            spec = job_spec_for_store_source(
                self.settings, verdict.job_id, verdict.source_key, manifest=None
            )
            took = offer(spec, f"lower-case job id {name} taken as {verdict.job_id}")
            if took:
                BUCKET_KEYS.labels(outcome="normalized_job_id").inc()
                log.info(
                    "bucket_key_normalized",
                    key=verdict.source_key,
                    job_id=verdict.job_id,
                    status_key=keys.status_key(verdict.job_id),
                )
            submitted += took
        return submitted

    def refuse(self, name: str, verdict: FolderVerdict, found_key: str) -> None:
        """Write the failed status.json into ``jobs/<name>/`` (where the user looks)."""
        assert verdict.code is not None and verdict.message is not None
        shown = clean_filename(found_key.rsplit("/", 1)[-1], path_allowed=False)
        manifest = Manifest(
            job_id=name,
            state="failed",
            stage="done",
            origin="bucket",
            filename=shown.name,
            warnings=shown.warnings(),
            source_key=found_key,
            finished_at=utc_now(),
            error={"code": verdict.code, "message": verdict.message},
        )
        key = f"{keys.JOBS_PREFIX}{name}/status.json"
        self.store.put_bytes(
            key, json.dumps(manifest.to_json(), indent=2).encode(), content_type="application/json"
        )
        self._answered.add(name)
        BUCKET_KEYS.labels(outcome=verdict.code).inc()
        log.warning(
            "bucket_key_refused",
            key=found_key,
            code=verdict.code,
            status_key=key,
            message=verdict.message,
        )

    def misnamed_input(self, job_id: str) -> bool:
        """For a canonical job folder with no manifest and no ``source.<ext>``: refuse it
        when its ``input/`` holds something else. True when it did."""
        found = [info.key for info in self.store.list(keys.input_prefix(job_id))]
        verdict = source_name_problem(job_id, found)
        if verdict is None:
            return False
        self.refuse(job_id, verdict, found[0])
        return True
