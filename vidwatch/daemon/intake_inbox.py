"""The inbox: videos dropped into ``INBOX_DIR`` become jobs with ``origin: inbox``.

watchfiles reports a file at its first write and gives no close event, and never reports
files that were there before the watch began; so its events are hints only. Every file seen
(by an event, at start-up, or by the rescan every ``INBOX_RESCAN_S``) is taken only once its
size, modification time and inode stayed the same for ``INBOX_SETTLE_S``. Dotfiles,
``*.part``, ``*.partial``, ``*.tmp``, ``*.crdownload``, ``*.download``, symlinks and
sub-folders are left alone: write big files under such a name and rename them into place,
the rename is seen whole at once.

A settled file is moved (``rename`` on one filesystem, copy then delete across two) to
``TEMP_MEDIA_DIR/<job_id>/input/source.<ext>`` (``<ext>`` by ``jobs.names.source_ext``: a
listed video extension, else the sniffed container, else ``bin``; the file's name, cleaned
by the shared name rules, goes to ``source.filename``); its ``status.json`` is written as ``queued``
and the job goes to the runner. From then on the user finds it in the store,
``jobs/<job_id>/input/``, beside the manifest, whatever the job's end. A file that cannot
be read is moved to ``INBOX_DIR/failed/`` with ``<name>.error.txt`` beside it saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from vidwatch import metrics
from vidwatch.config import Settings
from vidwatch.errors import QueueFull, VidwatchError
from vidwatch.jobs.dedupe import REANALYZE_MARKER
from vidwatch.jobs.manifest import Manifest, utc_now, write_manifest
from vidwatch.jobs.names import clean_filename, file_head, source_ext
from vidwatch.jobs.staging import (
    ARRIVING,
    JobSpec,
    doubling_wait_s,
    new_job_id,
    staged_source_path,
)
from vidwatch.r2.store import ObjectStore, StoreError

log = structlog.get_logger("vidwatch.intake.inbox")

FAILED_DIR = "failed"
IGNORED_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".swp", ".error.txt")
COPY_CHUNK = 1024 * 1024


def is_candidate_name(name: str) -> bool:
    """Whether a file of this name may be a finished video (not a temporary or hidden file)."""
    lowered = name.lower()
    return (
        bool(name)
        and not name.startswith(".")
        and not name.endswith("~")
        and not lowered.endswith(IGNORED_SUFFIXES)
    )


@dataclass(frozen=True)
class FileSig:
    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, path: Path) -> FileSig | None:
        """The file's signature, or None when it is gone or not a regular file."""
        try:
            st = path.lstat()
        except OSError:
            return None
        import stat

        if not stat.S_ISREG(st.st_mode):
            return None
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


class Settler:
    """Decides when a file is completely written: its signature unchanged across looks at
    least ``settle_s`` apart. Pure: the caller passes each look's time."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._seen: dict[str, tuple[FileSig, float]] = {}

    def observe(self, path: str, sig: FileSig | None, now: float) -> bool:
        if sig is None:
            self._seen.pop(path, None)
            return False
        previous = self._seen.get(path)
        if previous is None or previous[0] != sig:
            self._seen[path] = (sig, now)
            return False
        return now - previous[1] >= self.settle_s

    def forget(self, path: str) -> None:
        self._seen.pop(path, None)

    def __len__(self) -> int:
        return len(self._seen)


class SourceGone(VidwatchError):
    """The file went away before it could be staged (the user moved it back)."""


class SourceUnreadable(VidwatchError):
    """The file itself cannot be read: it goes to ``failed/``."""


def stage_inbox_file(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest``: one rename on one filesystem; across filesystems a copy to a
    partial name, fsync, rename into place, then the original is removed. Errors reading the
    source raise SourceUnreadable; errors on our side (disk full, staging not writable) are
    OSErrors, and the file stays in the inbox for a later try."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dest)
        return
    except FileNotFoundError:
        raise SourceGone(str(src)) from None
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = dest.with_name(dest.name + ".partial")
    try:
        fh = open(src, "rb")  # noqa: SIM115 - closed below, errors told apart
    except FileNotFoundError:
        raise SourceGone(str(src)) from None
    except OSError as exc:
        raise SourceUnreadable(f"cannot open: {exc.strerror or exc}") from None
    try:
        with fh, open(partial, "wb") as out:
            while True:
                try:
                    block = fh.read(COPY_CHUNK)
                except OSError as exc:
                    raise SourceUnreadable(f"read error: {exc.strerror or exc}") from None
                if not block:
                    break
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(src)


class InboxIntake:
    """Watches ``INBOX_DIR`` and turns each settled file into a job."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        *,
        submit: Callable[[JobSpec], bool],
        has_room: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        stage: Callable[[Path, Path], None] = stage_inbox_file,
        notify: Callable[..., None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.inbox = Path(settings.inbox_dir)
        self.submit = submit
        self.has_room = has_room
        self.clock = clock
        self.stage = stage
        self.notify = notify
        self.settler = Settler(settings.inbox_settle_s)
        self.tick_s = min(1.0, max(0.1, settings.inbox_settle_s / 2))
        self._candidates: set[str] = set()
        self._backlog: list[JobSpec] = []
        self._retry_after: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_rescan = 0.0
        self.claimed = 0

    # --- life -----------------------------------------------------------------------------
    def prepare(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.prepare()
        self.rescan()
        self._thread = threading.Thread(target=self._loop, name="vidwatch-inbox", daemon=True)
        self._thread.start()
        log.info(
            "inbox_watching",
            inbox=str(self.inbox.resolve()),
            settle_s=self.settings.inbox_settle_s,
            force_polling=self.settings.inbox_force_polling,
        )

    def halt(self) -> None:
        """Take no more files (safe from a signal handler: it only sets a flag)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def run_once(self, timeout_s: float | None = None) -> int:
        """For ``--once``: take every file now in the inbox once it has settled; files that
        do not settle within ``timeout_s`` wait for the next run. Returns jobs submitted."""
        self.prepare()
        timeout_s = (
            timeout_s
            if timeout_s is not None
            else max(3 * self.settings.inbox_settle_s, self.settings.inbox_settle_s + 5)
        )
        deadline = self.clock() + timeout_s
        self.rescan()
        before = self.claimed
        while (
            (self._candidates or self._backlog)
            and self.clock() < deadline
            and not self._stop.is_set()
        ):
            self.tick()
            if self._candidates or self._backlog:
                self._stop.wait(self.tick_s)
        if self._candidates:
            log.info("inbox_files_left", count=len(self._candidates), reason="still being written")
        return self.claimed - before

    def _loop(self) -> None:
        from watchfiles import Change, watch

        ms = int(self.tick_s * 1000)
        while not self._stop.is_set():
            try:
                for changes in watch(
                    self.inbox,
                    stop_event=self._stop,
                    yield_on_timeout=True,
                    rust_timeout=ms,
                    debounce=ms,
                    step=50,
                    recursive=False,
                    force_polling=self.settings.inbox_force_polling or None,
                    poll_delay_ms=300,
                    raise_interrupt=False,
                    watch_filter=None,
                ):
                    for change, path in changes:
                        if change != Change.deleted:
                            self._note(Path(path))
                    self._tick_safely()
            except Exception:  # e.g. the inbox folder was removed
                log.exception("inbox_watch_failed", retry_s=5)
                if self._stop.wait(5):
                    return
                with contextlib.suppress(OSError):
                    self.prepare()

    def _tick_safely(self) -> None:
        try:
            if self.clock() >= self._next_rescan:
                self.rescan()
            self.tick()
        except Exception:  # the next tick tries again
            log.exception("inbox_tick_failed")

    # --- finding files --------------------------------------------------------------------
    def _note(self, path: Path) -> None:
        if path.parent.resolve() == self.inbox.resolve() and is_candidate_name(path.name):
            self._candidates.add(path.name)

    def rescan(self) -> None:
        self._next_rescan = self.clock() + self.settings.inbox_rescan_s
        try:
            entries = list(os.scandir(self.inbox))
        except FileNotFoundError:
            self.prepare()
            return
        for entry in entries:
            if is_candidate_name(entry.name) and entry.is_file(follow_symlinks=False):
                self._candidates.add(entry.name)

    def tick(self) -> None:
        """Look at every candidate once; take the ones that settled."""
        self._flush_backlog()
        now = self.clock()
        for name in sorted(self._candidates):
            if self._stop.is_set():
                return
            path = self.inbox / name
            sig = FileSig.of(path)
            if sig is None:
                self._candidates.discard(name)
                self.settler.forget(name)
                continue
            if now < self._retry_after.get(name, 0.0):
                continue
            if not self.settler.observe(name, sig, now):
                continue
            if not self.has_room() or self._backlog:
                return  # the queue is full: the file waits in the inbox
            self._claim(name, path, sig)

    # --- taking a file --------------------------------------------------------------------
    def _claim(self, name: str, path: Path, sig: FileSig) -> None:
        job_id = new_job_id()
        ext = source_ext(name, file_head(path))
        dest = staged_source_path(self.settings, job_id, ext)
        bound = log.bind(job_id=job_id, filename=name)
        try:
            with ARRIVING.hold(job_id):
                self.stage(path, dest)
        except SourceGone:
            self._candidates.discard(name)
            self.settler.forget(name)
            _remove_empty_staging(dest)
            return
        except SourceUnreadable as exc:
            self._candidates.discard(name)
            self.settler.forget(name)
            _remove_empty_staging(dest)
            self._move_to_failed(path, str(exc))
            return
        except OSError as exc:
            _remove_empty_staging(dest)
            self._stage_failed(name, path, exc, bound)
            return
        self._candidates.discard(name)
        self.settler.forget(name)
        self._retry_after.pop(name, None)
        self._failures.pop(name, None)
        self.claimed += 1
        bound.info("inbox_file_claimed", bytes=sig.size, staged=str(dest))
        self._queue_staged(name, job_id, dest, sig, bound)

    def _stage_failed(self, name: str, path: Path, exc: OSError, bound: Any) -> None:
        """Staging the file failed (a full disk?): it stays in the inbox, tried again
        after a backoff, and goes to failed/ after INBOX_STAGE_ATTEMPTS tries."""
        self.settler.forget(name)
        failures = self._failures.get(name, 0) + 1
        self._failures[name] = failures
        metrics.INBOX_STAGE_FAILURES.inc()
        if failures >= self.settings.inbox_stage_attempts:
            self._candidates.discard(name)
            self._failures.pop(name, None)
            self._retry_after.pop(name, None)
            bound.error(
                "inbox_stage_failed",
                error=str(exc),
                attempt=failures,
                effect="moved to failed/ after the last attempt",
            )
            self._move_to_failed(
                path,
                f"could not be staged in {failures} attempts: {exc.strerror or exc} "
                f"(TEMP_MEDIA_DIR {self.settings.temp_media_dir}; a full disk?)",
            )
            return
        wait_s = stage_backoff_s(failures, self.settings.inbox_settle_s)
        self._retry_after[name] = self.clock() + wait_s
        bound.error(
            "inbox_stage_failed",
            error=str(exc),
            attempt=failures,
            retry_in_s=wait_s,
            effect="file left in the inbox, tried again later",
        )

    def _queue_staged(self, name: str, job_id: str, dest: Path, sig: FileSig, bound: Any) -> None:
        """A staged file becomes a job: its queued status.json (event ``job.queued``) and
        its spec in the backlog the runner is fed from."""
        reanalyze = REANALYZE_MARKER in name.lower()
        cleaned = clean_filename(name, path_allowed=False)
        manifest = Manifest(
            job_id=job_id,
            origin="inbox",
            filename=cleaned.name,
            source_bytes=sig.size,
            reanalyze=reanalyze,
            warnings=cleaned.warnings(),
        )
        try:
            write_manifest(self.store, manifest)
        except StoreError as exc:  # run_job writes it again; the staged file is safe
            bound.warning("manifest_write_failed", error=str(exc))
        else:
            if self.notify is not None:
                self.notify("job.queued", manifest)
        self._backlog.append(
            JobSpec(
                job_id=job_id,
                staged_source=dest,
                origin="inbox",
                filename=cleaned.name,
                reanalyze=reanalyze,
                warnings=cleaned.warnings(),
            )
        )
        self._flush_backlog()

    def _flush_backlog(self) -> None:
        while self._backlog:
            try:
                self.submit(self._backlog[0])
            except QueueFull:
                return  # kept here, tried again at the next tick
            self._backlog.pop(0)

    def _move_to_failed(self, path: Path, reason: str) -> None:
        folder = self.inbox / FAILED_DIR
        try:
            folder.mkdir(exist_ok=True)
            target = folder / path.name
            if target.exists():
                target = folder / f"{path.stem}.{int(time.time())}{path.suffix}"
            os.rename(path, target)
            note = target.with_name(target.name + ".error.txt")
            note.write_text(
                f"{utc_now()}\nvidwatch could not take {path.name}: {reason}\n"
                "Fix the file and move it back into the inbox to try again.\n"
            )
        except OSError as exc:
            log.error("inbox_failed_move_failed", filename=path.name, error=str(exc))
            return
        log.warning("inbox_file_failed", filename=path.name, reason=reason, moved_to=str(target))


STAGE_BACKOFF_MAX_S = 300.0


def stage_backoff_s(failures: int, settle_s: float) -> float:
    """The wait before the next try to stage a file after ``failures`` failed tries:
    doubling from ``2 x settle_s`` (at least 1 s), at most 5 minutes."""
    return doubling_wait_s(failures, max(1.0, 2 * settle_s), STAGE_BACKOFF_MAX_S)


def _remove_empty_staging(dest: Path) -> None:
    for folder in (dest.parent, dest.parent.parent):
        try:
            folder.rmdir()
        except OSError:
            return
