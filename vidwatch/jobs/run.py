"""One job from staged source to manifest: verified source upload, analysis, artifacts,
results.json and status.json, with the user's local cleanup policy.

``run_job`` reads as its stages, one function each, in the order they run:
``_hash_and_dedupe``, ``_store_source``, ``_analyze``, ``_write_results`` and, whatever
the end, ``_finish``. The attempt and its manifest's transitions are an ``Attempt``, and
the error code of a failure is ``classify``'s (``vidwatch.jobs.attempt``)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import ValidationError
from structlog.typing import FilteringBoundLogger

from vidwatch.config import Settings
from vidwatch.detectors.registry import ModelSet
from vidwatch.errors import JobInterrupted
from vidwatch.jobs.attempt import Attempt
from vidwatch.jobs.dedupe import REANALYZE_METADATA, Claim, ContentIndex, content_key
from vidwatch.jobs.manifest import TERMINAL, JobSummary, Manifest, utc_now
from vidwatch.jobs.staging import JobSpec
from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, TextEncoder, analyze
from vidwatch.pipeline.documents import Results
from vidwatch.pipeline.views import read_results
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore, StoreError
from vidwatch.r2.verify import file_sha256, upload_verified, verify_object

log = structlog.get_logger("vidwatch.jobs")

WAIT_POLL_S = 2.0
"""How often a job waiting for another job of the same content looks again."""


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
    raised again; every other failure is recorded in the manifest (its code chosen by
    ``classify``), never raised.
    """
    options = options or AnalysisOptions.from_settings(settings)
    job = Attempt.begin(spec, store, settings, on_progress)
    try:
        job.save("staging")
        claim = _hash_and_dedupe(job, settings, models, stop, dedupe=dedupe)
        job.save("uploading_source")
        _store_source(job)
        if claim.outcome == "duplicate":
            assert claim.original is not None
            _complete_as_duplicate(job.manifest, store, claim.original, job.log)
        else:
            job.save("analyzing")
            results, descriptors = _analyze(job, models, toon, options, stop)
            job.save("writing")
            _write_results(job, settings, results, descriptors, on_library_change)
    except JobInterrupted:
        job.interrupt()
    except Exception as exc:  # noqa: BLE001 - a job's failure is data; the daemon goes on
        job.fail(exc)
    finally:
        _finish(job)
    if job.interrupted:
        raise JobInterrupted(spec.job_id)
    return job.manifest


# --- the stages, in their order ------------------------------------------------------------
def _hash_and_dedupe(
    job: Attempt,
    settings: Settings,
    models: ModelSet,
    stop: threading.Event | None,
    *,
    dedupe: bool,
) -> Claim:
    """The staged source's size and hash; with ``dedupe``, its content claimed in the
    index (``claimed``: analyse it; ``duplicate``: an earlier job's results answer)."""
    spec, manifest = job.spec, job.manifest
    source = spec.staged_source
    manifest.source_key = spec.source_key or keys.source_key(
        spec.job_id, source.suffix.lstrip(".") or "bin"
    )
    manifest.source_bytes = source.stat().st_size
    manifest.source_sha256 = file_sha256(source)
    if not dedupe:
        return Claim("claimed")
    claim = _claim_content(spec, manifest, job.store, settings, models, stop, job.save, job.log)
    job.claimed = claim if claim.outcome == "claimed" else None
    return claim


def _store_source(job: Attempt) -> None:
    """The source in the store, verified: uploaded from staging, or (already in the
    store) checked against the downloaded copy."""
    spec, manifest = job.spec, job.manifest
    assert manifest.source_key is not None
    if spec.source_in_store:
        # A user's own upload carries no sha256; the downloaded copy was hashed.
        verify_object(
            job.store,
            manifest.source_key,
            size=manifest.source_bytes,
            sha256=manifest.source_sha256,
            read_back=False,
            local="the downloaded copy",
        )
    else:
        upload_verified(
            job.store,
            manifest.source_key,
            spec.staged_source,
            sha256=manifest.source_sha256,
            content_type=keys.content_type_for(manifest.source_key),
        )
    job.verified = True


def _analyze(
    job: Attempt,
    models: ModelSet,
    toon: TextEncoder | None,
    options: AnalysisOptions,
    stop: threading.Event | None,
) -> tuple[Results, dict[int, Any]]:
    """The analysis, its artifacts written as it goes; with the faces' descriptors of
    each person (for the people library only, never written)."""
    descriptors: dict[int, Any] = {}
    context = AnalysisContext(
        job_id=job.spec.job_id,
        store=job.store,
        models=models,
        toon=toon,
        source_sha256=job.manifest.source_sha256,
        progress=job.progress,
        stop=stop,
        on_people=descriptors.update,
    )
    return analyze(job.spec.staged_source, context, options), descriptors


def _write_results(
    job: Attempt,
    settings: Settings,
    results: Results,
    descriptors: dict[int, Any],
    on_library_change: Callable[[Any], None] | None,
) -> None:
    """results.json with its exports and its people linked to the library, then the job
    ``completed`` with its summary and its report.html."""
    store, manifest, job_id = job.store, job.manifest, job.spec.job_id
    results.exports = _write_exports(store, job_id, results, manifest, job.log)
    _link_people(store, settings, manifest, results, descriptors, job.log, on_library_change)
    store.put_bytes(
        keys.results_key(job_id),
        json.dumps(results.to_json(), indent=1, ensure_ascii=False).encode(),
        content_type="application/json",
    )
    manifest.frames_total = results.video.frames
    manifest.frames_done = manifest.frames_total or 0
    manifest.state, manifest.finished_at = "completed", utc_now()
    manifest.summary = _short_summary(results)
    manifest.results_summary = results.summary.to_json()
    _write_report(store, manifest, results, job.log)
    job.log.info(
        "job_completed",
        frames=manifest.frames_total,
        scenes=len(results.scenes),
        sampled=len(results.frames),
    )


def _finish(job: Attempt) -> None:
    """Whatever the end: the attempt's record closed, the content index settled, the
    staged source cleaned up (not for an interrupted job, run again from it), a failed
    job's page, and status.json written a last time."""
    manifest = job.manifest
    job.record["ended_at"] = utc_now()
    job.record["outcome"] = "interrupted" if job.interrupted else manifest.state
    try:
        if job.claimed is not None and manifest.state in TERMINAL:
            try:
                ContentIndex(job.store).settle(
                    manifest.content_key or "", job.spec.job_id, manifest.state, job.claimed.etag
                )
            except StoreError as exc:  # a later arrival re-checks the job's own status
                job.log.warning("content_index_write_failed", error=str(exc))
        if not job.interrupted:
            _cleanup_local(job.spec, manifest, job.verified, job.log)
        if job.failure_page:
            _write_failed_report(job.store, manifest, job.log)
        try:
            job.save("done" if manifest.state in TERMINAL else None, force=True)
        except StoreError as exc:
            job.log.error("manifest_write_failed", error=str(exc))
    finally:
        job.close()


def _claim_content(
    spec: JobSpec,
    manifest: Manifest,
    store: ObjectStore,
    settings: Settings,
    models: ModelSet,
    stop: threading.Event | None,
    save: Callable[..., None],
    bound: FilteringBoundLogger,
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


def _complete_as_duplicate(
    manifest: Manifest, store: ObjectStore, original: str, bound: FilteringBoundLogger
) -> None:
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
    try:
        typed: Results | None = read_results(results)
    except ValidationError as exc:  # the page then shows the job without its results
        bound.warning("results_unreadable", job_id=original, errors=exc.error_count())
        typed = None
    _write_report(store, manifest, typed, bound, made_by=original)
    bound.info("job_completed", duplicate_of=original, frames=manifest.frames_total)


def _write_exports(
    store: ObjectStore,
    job_id: str,
    results: Results,
    manifest: Manifest,
    bound: FilteringBoundLogger,
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
    results: Results,
    descriptors: dict[int, Any],
    bound: FilteringBoundLogger,
    on_change: Callable[[Any], None] | None,
) -> None:
    """Each person of the job linked to the people library (``people[*].library_id``),
    with FACE_LIBRARY on; a failure other than the store's leaves them unlinked, with a
    warning, and the job stands."""
    if not settings.face_library or not results.people:
        return
    from vidwatch.library import PeopleLibrary
    from vidwatch.library.link import link_results

    library = PeopleLibrary(store, threshold=settings.face_match_threshold, on_change=on_change)
    # The library links results.json's people as data; their ids come back into the model.
    doc = {"people": [p.to_json() for p in results.people]}
    try:
        ids = link_results(library, manifest.job_id, doc, descriptors, file_name=manifest.filename)
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - the analysis stands (LibraryConflict too)
        bound.exception("library_link_failed")
        ids = [None] * len(results.people)
        manifest.warnings.append(
            {"code": "library_link_failed", "message": f"{type(exc).__name__}: {exc}"}
        )
    for person, library_id in zip(results.people, ids, strict=True):
        person.library_id = library_id


def _write_report(
    store: ObjectStore,
    manifest: Manifest,
    results: Results | None,
    bound: FilteringBoundLogger,
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


def _write_failed_report(
    store: ObjectStore, manifest: Manifest, bound: FilteringBoundLogger
) -> None:
    """A failed job's page too says what went wrong (its error's code and message). Best
    effort: the job's end is recorded in status.json whether or not the page lands."""
    try:
        _write_report(store, manifest, None, bound)
    except StoreError as exc:
        bound.warning("report_write_failed", error=str(exc))


def _cleanup_local(
    spec: JobSpec, manifest: Manifest, verified: bool, bound: FilteringBoundLogger
) -> None:
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
