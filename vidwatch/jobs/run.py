"""One job from staged source to manifest: verified source upload, analysis, artifacts,
results.json and status.json, with the user's local cleanup policy."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from vidwatch import metrics
from vidwatch.config import Settings
from vidwatch.detectors.registry import ModelSet
from vidwatch.errors import JobError, JobInterrupted
from vidwatch.jobs.dedupe import REANALYZE_METADATA, Claim, ContentIndex, content_key
from vidwatch.jobs.manifest import (
    TERMINAL,
    ErrorInfo,
    JobSummary,
    Manifest,
    SourceInfo,
    Stage,
    read_manifest,
    utc_at,
    utc_now,
    worker_id,
)
from vidwatch.jobs.names import FILENAME_CHANGED
from vidwatch.jobs.staging import JobSpec, resolve_cleanup
from vidwatch.jobs.webhooks import write_keeping_notifications
from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, TextEncoder, analyze
from vidwatch.pipeline.documents import Results
from vidwatch.r2 import keys
from vidwatch.r2.leases import Lease, owner_worker
from vidwatch.r2.local import DISK_FULL_ERRNOS
from vidwatch.r2.retry import RETRY_TALLY, RetryTally
from vidwatch.r2.store import ObjectStore, StorageFull, StoreError
from vidwatch.r2.verify import file_sha256, upload_verified, verify_object

log = structlog.get_logger("vidwatch.jobs")

PROGRESS_WRITE_INTERVAL_S = 2.0
WAIT_POLL_S = 2.0
"""How often a job waiting for another job of the same content looks again."""
INTAKE_WARNINGS = (FILENAME_CHANGED,)
"""Warnings intake writes before any attempt: kept as they are by every attempt."""
MIN_MANIFEST_INTERVAL_S = 1.1  # R2 allows about one write per second to one key


def run_job(
    spec: JobSpec,
    *,
    store: ObjectStore,
    settings: Settings,
    models: ModelSet,
    toon: TextEncoder | None,
    options: AnalysisOptions | None = None,
    on_progress: Callable[[Manifest], None] | None = None,
    stop: threading.Event | None = None,
    dedupe: bool = False,
    on_library_change: Callable[[Any], None] | None = None,
) -> Manifest:
    """Run one job to its end and return its final manifest (completed or failed).

    ``on_library_change``: the people library's listener (``vidwatch.library``), told of
    each library person this job links.

    ``dedupe`` (the daemon's jobs): claim the content in the index first; a job whose
    content an earlier job analysed completes at once with ``duplicate_of`` (see
    ``vidwatch.jobs.dedupe``). Without it (``vidwatch analyze``) the job always analyses.

    A JobInterrupted (the daemon is stopping) puts the manifest back to ``queued`` and is
    raised again; every other failure is recorded in the manifest, never raised.
    """
    options = options or AnalysisOptions.from_settings(settings)
    bound = log.bind(job_id=spec.job_id)
    structlog.contextvars.bind_contextvars(job_id=spec.job_id)
    manifest = read_manifest(store, spec.job_id) or Manifest(
        job_id=spec.job_id, source=SourceInfo(origin=spec.origin, filename=spec.filename)
    )
    manifest.origin = spec.origin
    manifest.filename = spec.filename or manifest.filename
    # The source's key from the first write on: a bucket upload under a lower-case id is
    # told apart from another upload to the same job id by it (daemon.intake_keys).
    manifest.source_key = spec.source_key or manifest.source_key
    earlier = _earlier_attempts(manifest, spec.lapsed_lease)
    manifest.state, manifest.stage = "running", "staging"
    manifest.started_at, manifest.finished_at = utc_now(), None
    manifest.error, manifest.warnings = None, earlier
    for warning in spec.warnings:  # intake's (a cleaned file name), once
        if warning not in manifest.warnings:
            manifest.warnings.append(warning)
    manifest.attempts += 1
    attempt_no = manifest.attempts
    attempt = {
        "attempt": attempt_no,
        "worker": worker_id(),
        "started_at": manifest.started_at,
        "ended_at": None,
        "outcome": None,
    }
    manifest.attempt_history.append(attempt)
    tally = RetryTally()
    tally_token = RETRY_TALLY.set(tally)
    manifest.frames_done, manifest.frames_total = 0, None
    manifest.cleanup_local_source = resolve_cleanup(
        spec.cleanup_override, settings.cleanup_local_video_after_upload_default
    )
    verified = False
    interrupted = False
    # A failed job gets its report.html, unless the store is what failed (unreachable, or
    # full): more writes would wait out the same outage, or fill it again.
    failure_page = False
    claimed: Claim | None = None
    last_write = float("-inf")
    written = _Written()  # the ETag of the job's last status.json write

    def save(stage: Stage | None = None, *, force: bool = False) -> None:
        """Record a stage; the manifest is written at most once a second (R2 takes about
        one write per second to a key), except when ``force``: the final state always is."""
        nonlocal last_write
        _note_retries(manifest, tally, attempt_no)
        if stage is not None:
            manifest.stage = stage
            structlog.contextvars.bind_contextvars(stage=stage)
            bound.info("job_stage", stage=stage)
        now = time.monotonic()
        if force or now - last_write >= MIN_MANIFEST_INTERVAL_S:
            last_write = now
            written.etag = write_keeping_notifications(store, manifest, written.etag)
        if on_progress is not None:
            on_progress(manifest)

    def progress(done: int, total: int | None) -> None:
        manifest.frames_done, manifest.frames_total = done, total
        if time.monotonic() - last_write >= PROGRESS_WRITE_INTERVAL_S:
            save()
        elif on_progress is not None:
            on_progress(manifest)

    try:
        save("staging")
        source = spec.staged_source
        manifest.source_key = spec.source_key or keys.source_key(
            spec.job_id, source.suffix.lstrip(".") or "bin"
        )
        manifest.source_bytes = source.stat().st_size
        manifest.source_sha256 = file_sha256(source)
        if dedupe:
            claim = _claim_content(spec, manifest, store, settings, models, stop, save, bound)
            claimed = claim if claim.outcome == "claimed" else None
        else:
            claim = Claim("claimed")
        save("uploading_source")
        if spec.source_in_store:
            # A user's own upload carries no sha256; the downloaded copy was hashed.
            verify_object(
                store,
                manifest.source_key,
                size=manifest.source_bytes,
                sha256=manifest.source_sha256,
                read_back=False,
                local="the downloaded copy",
            )
        else:
            upload_verified(
                store,
                manifest.source_key,
                source,
                sha256=manifest.source_sha256,
                content_type=keys.content_type_for(manifest.source_key),
            )
        verified = True
        if claim.outcome == "duplicate":
            assert claim.original is not None
            _complete_as_duplicate(manifest, store, claim.original, bound)
        else:
            save("analyzing")
            descriptors: dict[int, Any] = {}  # person -> descriptors, for the library only
            context = AnalysisContext(
                job_id=spec.job_id,
                store=store,
                models=models,
                toon=toon,
                source_sha256=manifest.source_sha256,
                progress=progress,
                stop=stop,
                on_people=descriptors.update,
            )
            results = analyze(source, context, options)
            save("writing")
            doc = results.to_json()
            doc["exports"] = _write_exports(store, spec.job_id, doc, manifest, bound)
            _link_people(store, settings, manifest, doc, descriptors, bound, on_library_change)
            store.put_bytes(
                keys.results_key(spec.job_id),
                json.dumps(doc, indent=1, ensure_ascii=False).encode(),
                content_type="application/json",
            )
            manifest.frames_total = results.video.frames
            manifest.frames_done = manifest.frames_total or 0
            manifest.state, manifest.finished_at = "completed", utc_now()
            manifest.summary = _short_summary(results)
            manifest.results_summary = results.summary.to_json()
            _write_report(store, manifest, doc, bound)
            bound.info(
                "job_completed",
                frames=manifest.frames_total,
                scenes=len(results.scenes),
                sampled=len(results.frames),
            )
    except JobInterrupted:
        interrupted = True
        manifest.state, manifest.stage = "queued", "queued"
        manifest.started_at = None
        bound.warning("job_interrupted")
    except JobError as exc:
        failure_page = True
        _fail(manifest, exc.code, exc.message)
        bound.warning("job_failed", code=exc.code, message=exc.message)
    except StorageFull as exc:
        _fail(
            manifest,
            "storage_full",
            _storage_full_message(store, spec, exc, verified, manifest.source_key),
        )
        bound.error("job_failed", code="storage_full", message=str(exc))
    except StoreError as exc:
        message = str(exc) + (f" (check {exc.setting})" if exc.setting else "")
        _fail(manifest, exc.code, message)
        bound.error("job_failed", code=exc.code, message=message)
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            failure_page = True
            _fail(manifest, "internal_error", f"{type(exc).__name__}: {exc}")
            bound.exception("job_failed", code="internal_error")
        else:
            _fail(
                manifest,
                "storage_full",
                _storage_full_message(store, spec, exc, verified, manifest.source_key),
            )
            bound.error("job_failed", code="storage_full", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - a job's failure is data; the daemon goes on
        failure_page = True
        _fail(manifest, "internal_error", f"{type(exc).__name__}: {exc}")
        bound.exception("job_failed", code="internal_error")
    finally:
        attempt["ended_at"] = utc_now()
        attempt["outcome"] = "interrupted" if interrupted else manifest.state
        if claimed is not None and manifest.state in TERMINAL:
            try:
                ContentIndex(store).settle(
                    manifest.content_key or "", spec.job_id, manifest.state, claimed.etag
                )
            except StoreError as exc:  # a later arrival re-checks the job's own status
                bound.warning("content_index_write_failed", error=str(exc))
        if not interrupted:
            _cleanup_local(spec, manifest, verified, bound)
        if failure_page:
            _write_failed_report(store, manifest, bound)
        try:
            save("done" if manifest.state in TERMINAL else None, force=True)
        except StoreError as exc:
            bound.error("manifest_write_failed", error=str(exc))
        structlog.contextvars.unbind_contextvars("job_id", "stage")
        RETRY_TALLY.reset(tally_token)
    if interrupted:
        raise JobInterrupted(spec.job_id)
    return manifest


class _Written:
    """The ETag of a job's last status.json write: webhook delivery states merged in by
    the sender since then show as a lost condition (``write_keeping_notifications``)."""

    etag: str | None = None


def _claim_content(
    spec: JobSpec,
    manifest: Manifest,
    store: ObjectStore,
    settings: Settings,
    models: ModelSet,
    stop: threading.Event | None,
    save: Callable[..., None],
    bound: Any,
) -> Claim:
    """The job's content key, claimed in the index: analyse it (``claimed``), or answer
    with an earlier job's results (``duplicate``). While another live job analyses the same
    content, wait for it (stage ``waiting``), so that the two never run side by side."""
    infos = getattr(models, "infos", {}) or {}
    manifest.content_key = content_key(
        manifest.source_sha256 or "", settings, {r: i.to_json() for r, i in infos.items()}
    )
    if spec.reanalyze:
        manifest.reanalyze = True
    if spec.source_in_store and not manifest.reanalyze and manifest.source_key:
        info = store.head(manifest.source_key)
        meta = {k.lower(): v for k, v in (info.metadata if info else {}).items()}
        manifest.reanalyze = meta.get(REANALYZE_METADATA, "").strip().lower() == "true"
    index = ContentIndex(store)
    waiting_for: str | None = None
    while True:
        claim = index.claim(manifest.content_key, spec.job_id, force=manifest.reanalyze)
        if claim.outcome != "wait":
            if claim.outcome == "duplicate":
                bound.info("job_duplicate", duplicate_of=claim.original)
            elif manifest.reanalyze:
                bound.info("job_reanalyze", content_key=manifest.content_key)
            return claim
        if claim.original != waiting_for:
            waiting_for = claim.original
            bound.info("job_waiting", waiting_for=claim.original, reason="same content")
            save("waiting", force=True)
        if stop is not None and stop.wait(WAIT_POLL_S):
            raise JobInterrupted(spec.job_id)
        if stop is None:
            time.sleep(WAIT_POLL_S)


def _complete_as_duplicate(manifest: Manifest, store: ObjectStore, original: str, bound) -> None:
    # Read as plain JSON: the original may have been written by another version.
    results = json.loads(store.get_bytes(keys.results_key(original)))
    manifest.duplicate_of = original
    manifest.frames_total = manifest.frames_done = results["video"]["frames"]
    manifest.state, manifest.finished_at = "completed", utc_now()
    manifest.summary = JobSummary(
        scenes=len(results["scenes"]),
        frames_analyzed=len(results["frames"]),
        labels=sorted(results["summary"]["labels"]),
        faces=results["summary"]["faces"],
        people=results["summary"].get("people", 0),
        duration_s=results["video"].get("duration_s"),
    )
    manifest.results_summary = results.get("summary")
    _write_report(store, manifest, results, bound, made_by=original)
    bound.info("job_completed", duplicate_of=original, frames=manifest.frames_total)


def unrecorded_attempt(manifest: Manifest | None, lapsed: Lease | None) -> bool:
    """Whether ``lapsed`` (the unreleased lease a claim took over once it ran out) was held
    by an attempt that status.json never heard of: it lost the lease, or its daemon died,
    before its first write landed. An attempt that wrote says ``running`` in the manifest,
    and an attempt's lease is taken before the attempt's ``started_at``."""
    if lapsed is None or lapsed.released:
        return False
    if manifest is None:
        return True
    if manifest.state == "running":
        return False
    last = manifest.attempt_history[-1] if manifest.attempt_history else None
    started = _epoch((last or {}).get("started_at"))
    return started is None or lapsed.acquired_at > started


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _record_unrecorded_attempt(manifest: Manifest, lapsed: Lease) -> None:
    """Put the attempt that held ``lapsed`` into the history, as ``running`` and cut off:
    ``_earlier_attempts`` then reports it as abandoned like any other."""
    manifest.attempts += 1
    manifest.attempt_history.append(
        {
            "attempt": manifest.attempts,
            "worker": owner_worker(lapsed.owner),
            "started_at": utc_at(lapsed.acquired_at),
            "ended_at": None,
            "outcome": None,
        }
    )
    manifest.state = "running"


def _earlier_attempts(manifest: Manifest, lapsed: Lease | None = None) -> list[dict[str, Any]]:
    """The warnings to keep from earlier attempts (each tagged with its attempt), plus one
    for an attempt that was cut off: the manifest still says ``running`` when its daemon
    died or lost the job's lease before it could write its end, and the lease a claim took
    over (``lapsed``) tells of an attempt that lost it before its first write."""
    kept = []
    for warning in manifest.warnings:
        if isinstance(warning, dict) and warning.get("code") in INTAKE_WARNINGS:
            kept.append(warning)  # intake's: of no attempt
        elif isinstance(warning, dict):
            kept.append({"attempt": manifest.attempts or None, **warning})
    if unrecorded_attempt(manifest, lapsed):
        assert lapsed is not None
        _record_unrecorded_attempt(manifest, lapsed)
    last = manifest.attempt_history[-1] if manifest.attempt_history else None
    if manifest.state == "running" and manifest.attempts:
        if last is not None and last.get("outcome") is None:
            last["outcome"] = "abandoned"
        worker = (last or {}).get("worker") or {}
        where = f" on {worker.get('host')}:{worker.get('pid')}" if worker else ""
        metrics.ATTEMPTS_ABANDONED.inc()
        log.warning("job_attempt_abandoned", job_id=manifest.job_id, attempt=manifest.attempts)
        kept.append(
            {
                "attempt": manifest.attempts + 1,
                "code": "attempt_abandoned",
                "message": f"attempt {manifest.attempts}{where} stopped before its end: its "
                "daemon died, or lost the job's lease (the store unreachable for longer than "
                f"LEASE_TTL_S); attempt {manifest.attempts + 1} took the job over",
            }
        )
    elif last is not None and last.get("outcome") is None:
        last["outcome"] = "interrupted"
    return kept


def _note_retries(manifest: Manifest, tally: RetryTally, attempt: int) -> None:
    """Keep the attempt's store retries in its warnings (one entry, kept current)."""
    warning = tally.warning()
    if warning is None:
        return
    warning = {"attempt": attempt, **warning}
    for i, existing in enumerate(manifest.warnings):
        if existing.get("code") == "store_retries" and existing.get("attempt") == attempt:
            manifest.warnings[i] = warning
            return
    manifest.warnings.append(warning)


def _storage_full_message(
    store: ObjectStore, spec: JobSpec, exc: BaseException, verified: bool, source_key: str | None
) -> str:
    """Free what the job wrote (its partial frames and documents are useless, and the
    failed manifest needs room) and say where the source is."""
    keep = {keys.status_key(spec.job_id), keys.lease_key(spec.job_id)}
    try:
        doomed = [
            info.key
            for info in store.list(keys.job_prefix(spec.job_id))
            if info.key not in keep and not keys.is_source_key(info.key)
        ]
        store.delete_many(doomed)
        dropped = f"its {len(doomed)} partial artifacts were removed"
    except StoreError as err:
        dropped = f"its partial artifacts could not be removed ({err})"
    if verified:
        where = f"the source is in the store at {source_key}"
    else:
        where = f"the source is kept in staging at {spec.staged_source}"
    return (
        f"out of storage space: {exc}; {dropped}; {where}. Free some space, then submit "
        "the video again"
    )


def _write_exports(
    store: ObjectStore, job_id: str, results: dict[str, Any], manifest: Manifest, bound
) -> dict[str, str]:
    """The editors' and players' files; a failure costs them (with a warning), not the job."""
    from vidwatch.pipeline.exports import write_exports

    try:
        return write_exports(store, job_id, results, source_key=manifest.source_key)
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - the analysis stands without its exports
        bound.exception("exports_failed")
        manifest.warnings.append(
            {"code": "exports_failed", "message": f"{type(exc).__name__}: {exc}"}
        )
        return {}


def _link_people(
    store: ObjectStore,
    settings: Settings,
    manifest: Manifest,
    results: dict[str, Any],
    descriptors: dict[int, Any],
    bound: Any,
    on_change: Callable[[Any], None] | None,
) -> None:
    """Each person of the job linked to the people library (``people[*].library_id``),
    with FACE_LIBRARY on; a failure other than the store's leaves them unlinked, with a
    warning, and the job stands."""
    if not settings.face_library or not results.get("people"):
        return
    from vidwatch.library import PeopleLibrary
    from vidwatch.library.link import link_results

    library = PeopleLibrary(store, threshold=settings.face_match_threshold, on_change=on_change)
    try:
        link_results(library, manifest.job_id, results, descriptors, file_name=manifest.filename)
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - the analysis stands (LibraryConflict too)
        bound.exception("library_link_failed")
        for person in results.get("people") or []:
            person["library_id"] = None
        manifest.warnings.append(
            {"code": "library_link_failed", "message": f"{type(exc).__name__}: {exc}"}
        )


def _write_report(
    store: ObjectStore,
    manifest: Manifest,
    results: dict[str, Any] | None,
    bound: Any,
    *,
    made_by: str | None = None,
) -> None:
    """``report.html`` beside the job's files, its links relative to them (a duplicate's
    to the files of ``made_by``, the job that analysed its bytes)."""
    from vidwatch.report.render import relative_link, render_job, static_job_link

    try:
        page = render_job(
            manifest.to_json(),
            results,
            relative_link(manifest.job_id, made_by),
            job_link=static_job_link,
        )
        store.put_bytes(
            keys.report_key(manifest.job_id),
            page.html.encode(),
            content_type=keys.content_type_for(keys.report_key(manifest.job_id)),
        )
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - the results stand without their page
        bound.exception("report_failed")
        manifest.warnings.append(
            {"code": "report_failed", "message": f"{type(exc).__name__}: {exc}"}
        )


def _write_failed_report(store: ObjectStore, manifest: Manifest, bound: Any) -> None:
    """A failed job's page too says what went wrong (its error's code and message). Best
    effort: the job's end is recorded in status.json whether or not the page lands."""
    try:
        _write_report(store, manifest, None, bound)
    except StoreError as exc:
        bound.warning("report_write_failed", error=str(exc))


def _fail(manifest: Manifest, code: str, message: str) -> None:
    manifest.state, manifest.finished_at = "failed", utc_now()
    manifest.error = ErrorInfo(code=code, message=message)


def _cleanup_local(spec: JobSpec, manifest: Manifest, verified: bool, bound) -> None:
    """Delete the staged source only after a verified upload and when the policy allows."""
    source = spec.staged_source
    if verified and manifest.cleanup_local_source:
        source.unlink(missing_ok=True)
        folder = source.parent.parent
        shutil.rmtree(folder, ignore_errors=True)
        manifest.local_source_deleted = True
        bound.info("local_source_deleted", path=str(source))
    else:
        manifest.local_source_deleted = False
        if not verified:
            bound.warning("local_source_kept", reason="upload not verified", path=str(source))


def _short_summary(results: Results) -> JobSummary:
    return JobSummary(
        scenes=len(results.scenes),
        frames_analyzed=len(results.frames),
        labels=sorted(results.summary.labels),
        faces=results.summary.faces,
        people=results.summary.people,
        duration_s=results.video.duration_s,
    )
