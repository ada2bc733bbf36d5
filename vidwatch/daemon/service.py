"""``vidwatch run``: the long-running service, and ``vidwatch run --once``.

One process holds the store, the models (loaded once), the runner, the intake sources (the
inbox, the bucket and staging scanner, the HTTP API), the retention schedule and the
systemd notifications. ``Service.start`` is a flat list of steps; ``Service.stop`` undoes
whatever started, in the order that loses nothing: intake first, then the HTTP server, then
the runner's drain (``SHUTDOWN_GRACE_S``), then the rest.

Exit codes: 0 after a stop on SIGTERM/SIGINT (or when ``--once`` is done), 2 for a setting
to fix (systemd does not restart then), 1 for anything worth a restart.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from vidwatch import __version__
from vidwatch.config import ConfigError, Settings
from vidwatch.daemon.http_socket import bind_http_socket, pages_url
from vidwatch.daemon.monitor import Monitor
from vidwatch.daemon.sdnotify import Notifier
from vidwatch.errors import VidwatchError
from vidwatch.logs import configure_logging
from vidwatch.r2.store import PermanentStoreError, StoreError

if TYPE_CHECKING:
    import uvicorn
    from apscheduler.schedulers.base import BaseScheduler

    from vidwatch.api.links import FileLinkSigner
    from vidwatch.catalog import CatalogKeeper
    from vidwatch.daemon.intake_bucket import JobScanner
    from vidwatch.daemon.intake_inbox import InboxIntake
    from vidwatch.daemon.runner import Runner
    from vidwatch.detectors.registry import ModelSet
    from vidwatch.jobs.webhooks import WebhookSender
    from vidwatch.library import PeopleLibrary
    from vidwatch.r2.store import ObjectStore
    from vidwatch.toon_bridge import ToonBridge

log = structlog.get_logger("vidwatch.service")

HTTP_START_TIMEOUT_S = 30.0
HTTP_STOP_TIMEOUT_S = 5.0
STOP_TAIL_S = 10.0
"""What the stop may spend after the runner's drain: intake threads, the HTTP server, the
monitor, the TOON helper and the store together, each step cut off at what is left."""
ONCE_MAX_ROUNDS = 1000


def stop_budget_s(settings: Settings) -> float:
    """The longest a stop may take, enforced by ``Service.stop``: the grace period, the wait
    for an interrupted job to write itself back, and the rest of the stop. systemd's
    ``TimeoutStopSec`` must be larger, with margin (90 s against 55 s by default)."""
    from vidwatch.daemon.runner import INTERRUPT_WAIT_S

    return settings.shutdown_grace_s + INTERRUPT_WAIT_S + STOP_TAIL_S


class StartupError(VidwatchError):
    """The service cannot start for a reason that a restart may cure (exit 1)."""


class _Stopping(Exception):
    """A stop was requested while starting."""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        help="run the daemon: inbox, bucket, HTTP API, retention",
        description="Run vidwatch as a service: watch INBOX_DIR, poll the bucket's "
        "jobs/*/input/ (with R2 settings), serve the HTTP API and the pages on "
        "HTTP_HOST:HTTP_PORT (127.0.0.1:8000 by default; the jobs at /jobs; "
        "HTTP_ENABLED=false for none), clean up on a schedule. The port is taken "
        "before the models load: a busy one stops the start at once (exit 2). "
        "SIGTERM stops it gracefully (SHUTDOWN_GRACE_S).",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="process what is pending (inbox, bucket, interrupted jobs) and "
        "exit; no HTTP server, no schedule",
    )
    return parser


def run_service(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_format, settings.log_level)
    service = Service(settings, once=bool(getattr(args, "once", False)))

    def on_signal(signum: int, _frame: Any) -> None:
        service.request_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = 1
    failed: dict[str, Any] | None = None
    try:
        service.start()
        code = service.wait()
    except _Stopping:
        code = 0
    except (ConfigError, PermanentStoreError) as exc:
        # A setting to fix: one line naming it, the last line of the start (after the stop).
        setting = getattr(exc, "setting", None)
        failed = {"error": str(exc), **({"setting": setting} if setting else {})}
        code = 2
    except (StoreError, StartupError, OSError) as exc:
        failed = {"error": str(exc)}
        code = 1
    except Exception:  # logged whole; systemd restarts us
        log.exception("service_crashed", exit_code=1)
        code = 1
    finally:
        clean = service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        log.error("start_failed", **failed, exit_code=code)
    if not clean:
        # A thread that ignored its stop (a job stuck in a library call) would hold the
        # interpreter's exit past the budget: leave now, as the budget promises.
        log.error("stop_budget_exceeded", budget_s=stop_budget_s(settings), exit_code=code)
        _flush_std_streams()
        os._exit(code)
    return code


def _flush_std_streams() -> None:
    import contextlib
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


class Service:
    def __init__(
        self, settings: Settings, *, once: bool = False, notifier: Notifier | None = None
    ) -> None:
        self.settings = settings
        self.once = once
        self.notifier = notifier or Notifier.from_env()
        self.stop_requested = threading.Event()
        self.hurry = threading.Event()
        # Set by start(), step by step; stop() undoes whichever of them exist.
        self.store: ObjectStore | None = None
        self.url_signer: FileLinkSigner | None = None
        self.models: ModelSet | None = None
        self.toon: ToonBridge | None = None
        self.runner: Runner | None = None
        self.webhooks: WebhookSender | None = None
        self.catalog: CatalogKeeper | None = None
        self.library: PeopleLibrary | None = None
        self.scanner: JobScanner | None = None
        self.inbox: InboxIntake | None = None
        self.scheduler: BaseScheduler | None = None
        self.http_server: uvicorn.Server | None = None
        self.http_thread: threading.Thread | None = None
        self.http_port: int | None = None
        self.http_socket: socket.socket | None = None
        self.pages_url: str | None = None
        self._monitor: Monitor | None = None
        self._stopped = False

    # --- signals --------------------------------------------------------------------------
    def request_stop(self, reason: str = "request") -> None:
        if self.stop_requested.is_set():
            log.warning(
                "shutdown_hurried",
                reason=reason,
                effect="running jobs are interrupted now, without the grace period",
            )
            self.hurry.set()
            return
        log.info("shutdown_requested", reason=reason, grace_s=self.settings.shutdown_grace_s)
        self.stop_requested.set()
        if self.inbox is not None:
            self.inbox.halt()  # intake stops at once; the rest in stop()
        if self.http_server is not None:
            self.http_server.should_exit = True

    def _check_stop(self) -> None:
        if self.stop_requested.is_set():
            raise _Stopping()

    # --- start ----------------------------------------------------------------------------
    def start(self) -> None:
        from vidwatch.api.links import FileLinkSigner
        from vidwatch.catalog import open_catalog
        from vidwatch.daemon.intake_bucket import JobScanner
        from vidwatch.daemon.intake_inbox import InboxIntake
        from vidwatch.daemon.retention import Retention
        from vidwatch.daemon.runner import Runner
        from vidwatch.detectors.registry import load_models
        from vidwatch.jobs.run import run_job
        from vidwatch.jobs.webhooks import WebhookSender
        from vidwatch.library import PeopleLibrary
        from vidwatch.pipeline.toon import open_toon
        from vidwatch.r2 import open_store
        from vidwatch.r2.leases import new_owner_id

        s = self.settings
        log.info(
            "service_starting",
            version=__version__,
            pid=os.getpid(),
            once=self.once,
            inbox=str(s.inbox_dir),
            temp_media_dir=str(s.temp_media_dir),
            stop_budget_s=stop_budget_s(s),
        )
        self.notifier.status("starting")
        _prepare_folder(s.temp_media_dir, "TEMP_MEDIA_DIR")
        _prepare_folder(s.inbox_dir, "INBOX_DIR")
        if s.http_enabled and not self.once:
            # The port before the models (tens of seconds): a busy one stops the start now.
            self.http_socket = bind_http_socket(s.http_host, s.http_port)

        # The local store's links point at the API's /files route (an S3 store presigns).
        self.url_signer = FileLinkSigner.from_settings(s)
        self.store = store = open_store(s, url_signer=self.url_signer)
        store.check()
        self._check_stop()

        # The catalog is derived: a new, foreign or unreadable file is rebuilt from the
        # store in the background (from below, once the models are in) while jobs run and
        # are indexed as they end. Opened before the models: a bad CATALOG_PATH stops now.
        # One people library for the jobs, the API and retention: its changes (renames,
        # merges, forgets) reach the catalog, which resolves names through it.
        self.library = library = (
            PeopleLibrary(store, threshold=s.face_match_threshold) if s.face_library else None
        )
        self.catalog = catalog = open_catalog(
            s, store, names=library.names_for if library is not None else None
        )
        if library is not None:
            library.on_change = catalog.on_library_change

        self.notifier.status("loading models")
        self.models = load_models(s)
        self._check_stop()
        self.toon = open_toon(s)
        catalog.start()

        owner = new_owner_id()
        # Webhooks first: jobs resumed below already have somewhere to tell their end.
        self.webhooks = webhooks = WebhookSender(s, store, owner=owner)
        webhooks.start()
        events = _fan_out(webhooks.emit, catalog.job_event)
        self.runner = runner = Runner(
            settings=s,
            store=store,
            models=self.models,
            toon=self.toon,
            owner=owner,
            notify=events,
            job_fn=functools.partial(
                run_job, dedupe=True, on_library_change=catalog.on_library_change
            ),
        )
        runner.start()

        # Recovery first: jobs left by a crash or a stop, and bucket sources waiting.
        self.scanner = scanner = JobScanner(
            s,
            store,
            submit=runner.submit,
            is_active=runner.is_active,
            has_room=runner.has_room,
            owner=runner.owner,
            new_sources=store.shared,
            retry_at=runner.retry_at,
            on_scan=catalog.on_scan,
        )
        runner.on_ended = scanner.note_ended
        scanner.poll_once(startup=True)
        self.inbox = inbox = InboxIntake(
            s,
            store,
            submit=runner.submit,
            has_room=runner.has_room,
            notify=events,
        )
        self._check_stop()
        if self.once:
            self.notifier.ready("processing pending jobs (--once)")
            log.info("service_ready", mode="once")
            return

        scanner.start()
        inbox.start()
        self.scheduler = Retention(
            s, store, is_active=runner.is_active, catalog=catalog, library=library
        ).schedule()
        self._monitor = Monitor(
            self.notifier,
            alive=self._alive,
            status=self._status_text,
            store=store,
            probe_timeout_s=s.store_probe_timeout_s,
        )
        self._monitor.start()
        if s.http_enabled:
            self._start_http(store, runner, events)
        self._check_stop()
        self.notifier.ready(self._status_text())
        log.info(
            "service_ready",
            mode="service",
            store=store.name,
            http=self.http_port is not None,
            **({"url": self.pages_url} if self.pages_url else {}),
            bucket_polling=scanner.new_sources,
            watchdog_s=self.notifier.watchdog_s,
        )

    def _start_http(self, store: ObjectStore, runner: Runner, events: Any) -> None:
        import uvicorn

        from vidwatch.api.app import create_app
        from vidwatch.api.context import ApiContext

        s = self.settings
        app = create_app(
            ApiContext(
                settings=s,
                store=store,
                submit=runner.submit,
                health=self.health,
                signer=self.url_signer,
                notify=events,
                catalog=self.catalog.catalog if self.catalog is not None else None,
                library=self.library,
                photo_faces=_photo_faces(self.models),
            )
        )
        config = uvicorn.Config(
            app,
            host=s.http_host,
            port=s.http_port,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        sock = self.http_socket
        assert sock is not None, "start() binds the socket before the models load"
        # Not the main thread: uvicorn then leaves SIGTERM/SIGINT to us (it would otherwise
        # take them and raise them again after its own shutdown, cutting our drain short).
        # It serves the socket bound at the start, so the port cannot be lost meanwhile.
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="vidwatch-http", daemon=True
        )
        self.http_server, self.http_thread = server, thread
        thread.start()
        deadline = time.monotonic() + HTTP_START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise StartupError(
                    f"the HTTP server could not listen on {s.http_host}:"
                    f"{s.http_port} (check HTTP_HOST/HTTP_PORT)"
                )
            self._check_stop()
            if time.monotonic() > deadline:
                raise StartupError("the HTTP server did not start")
            time.sleep(0.02)
        address = server.servers[0].sockets[0].getsockname()
        self.http_port = int(address[1])
        self.pages_url = pages_url(s.public_base_url, s.http_host, self.http_port)
        log.info("http_listening", host=address[0], port=self.http_port, url=self.pages_url)

    # --- running --------------------------------------------------------------------------
    def wait(self) -> int:
        if self.once:
            return self._run_once()
        runner = self.runner
        assert runner is not None, "wait() comes after start()"
        while not self.stop_requested.wait(1.0):
            if not runner.alive():
                log.error("runner_died", effect="exit 1 for a restart")
                return 1
            if self.http_thread is not None and not self.http_thread.is_alive():
                log.error("http_server_died", effect="exit 1 for a restart")
                return 1
        return 0

    def _run_once(self) -> int:
        """Rounds of: wait until the runner is idle, look again (the bucket, staging, the
        inbox; the first round also sweeps all of ``jobs/``, unpaced); done when a round
        finds nothing it had not found before."""
        runner, scanner, inbox = self.runner, self.scanner, self.inbox
        assert runner and scanner and inbox, "_run_once() comes after start()"
        seen = set(scanner.last_found)
        inbox.run_once()
        swept = False
        for _ in range(ONCE_MAX_ROUNDS):
            runner.wait_idle(stop=self.stop_requested)
            if self.stop_requested.is_set():
                break
            from_inbox = inbox.run_once()
            scanner.poll_once()
            if not swept:  # once, for what no marker and no window shows (old ids)
                scanner.sweep_once(paced=False)
                swept = True
            new = scanner.last_found - seen
            seen |= scanner.last_found
            if not new and not from_inbox:
                break
        if self.catalog is not None:
            self.catalog.drain()
        if self.webhooks is not None and self.webhooks.enabled:
            # Attempt what is due now once; what fails stays in the outbox for a later run.
            self.webhooks.drain(self.settings.webhook_timeout_s + 5)
        log.info("once_done", inbox_files=inbox.claimed, jobs_found=len(seen))
        return 0

    def health(self) -> dict[str, Any]:
        """For ``/healthz`` and the watchdog: ok when the runner lives and the store
        answered its last probe."""
        runner = (
            self.runner.health()
            if self.runner is not None
            else {"runner_alive": False, "queue_depth": 0, "jobs_running": 0}
        )
        probe = self._monitor.store_state() if self._monitor else (None, None)
        store_ok, store_error = probe
        body = {
            **runner,
            "store": getattr(self.store, "name", None),
            "store_ok": bool(store_ok),
            "store_error": store_error,
            "scan_error": getattr(self.scanner, "last_error", None),
            **(self.webhooks.health() if self.webhooks is not None else {}),
            **(self.catalog.health() if self.catalog is not None else {}),
        }
        body["ok"] = bool(runner["runner_alive"] and store_ok and not self.stop_requested.is_set())
        return body

    def _alive(self) -> bool:
        """The runner lives, and the HTTP server where there is one (the watchdog's ping)."""
        return (
            self.runner is not None
            and self.runner.alive()
            and (self.http_thread is None or self.http_thread.is_alive())
        )

    def _status_text(self) -> str:
        h: dict[str, Any] = self.runner.health() if self.runner is not None else {}
        return (
            f"{h.get('jobs_running', 0)} running, {h.get('queue_depth', 0)} queued; "
            f"inbox {self.settings.inbox_dir}"
        )

    # --- stop -----------------------------------------------------------------------------
    def stop(self) -> bool:
        """Intake first (nothing new is taken), then the drain of the jobs in hand, then the
        rest, all within ``stop_budget_s``: the drain takes at most SHUTDOWN_GRACE_S plus
        runner.INTERRUPT_WAIT_S, every later step is cut off at what is left of STOP_TAIL_S.
        False when something was still running when its bound ran out."""
        if self._stopped:
            return True
        self._stopped = True
        started = time.monotonic()
        budget_s = stop_budget_s(self.settings)
        deadline = started + budget_s
        clean = True
        self.notifier.stopping()
        log.info("service_stopping", budget_s=budget_s)
        if self.inbox is not None:
            self.inbox.halt()
        if self.scanner is not None:
            self.scanner.halt()
        if self.runner is not None:
            self.runner.close()  # a late upload gets 503 and nothing is half-accepted
        if self.http_server is not None:
            self.http_server.should_exit = True
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.runner is not None:
            from vidwatch.daemon import runner as runner_module

            clean = self.runner.shutdown(
                self.settings.shutdown_grace_s,
                hurry=self.hurry,
                interrupt_wait_s=runner_module.INTERRUPT_WAIT_S,
            )
        tail_end = min(deadline, time.monotonic() + STOP_TAIL_S)
        steps = [
            # after the drain: the drained jobs' events are recorded
            ("webhooks", getattr(self.webhooks, "stop", None)),
            ("inbox", getattr(self.inbox, "stop", None)),
            ("scanner", getattr(self.scanner, "stop", None)),
            (
                "http",
                (lambda t=self.http_thread: t.join(HTTP_STOP_TIMEOUT_S))
                if self.http_thread is not None
                else None,
            ),
            ("monitor", getattr(self._monitor, "stop", None)),
            ("catalog", getattr(self.catalog, "close", None)),
            ("toon", getattr(self.toon, "close", None)),
            ("store", getattr(self.store, "close", None)),
        ]
        for name, step in steps:
            if step is not None and not _bounded(step, tail_end - time.monotonic()):
                log.warning("stop_step_cut_off", step=name)
                clean = False
        if self.http_thread is not None and self.http_thread.is_alive():
            clean = False
        elif self.http_socket is not None:
            self.http_socket.close()  # bound at the start; uvicorn may never have taken it
        took_s = time.monotonic() - started
        log.info("service_stopped", took_s=round(took_s, 2), budget_s=budget_s, clean=clean)
        self.notifier.close()
        return clean


def _fan_out(*listeners: Any) -> Any:
    """One job-event callback that tells each listener in turn (webhooks, the catalog)."""

    def notify(type_: str, manifest: Any, **kwargs: Any) -> None:
        for listener in listeners:
            listener(type_, manifest, **kwargs)

    return notify


def _bounded(step: Any, left_s: float) -> bool:
    """Run ``step`` in a thread of its own and wait at most ``left_s`` seconds for it;
    False when it was still running then (it is left behind, a daemon thread)."""
    thread = threading.Thread(target=step, name="vidwatch-stop-step", daemon=True)
    thread.start()
    thread.join(max(0.0, left_s))
    return not thread.is_alive()


def _prepare_folder(path: Path, setting: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: cannot create the folder: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{setting}={path}: the folder is not writable")


def _photo_faces(models: Any) -> Any:
    """The enrolment photos' reader on the models the daemon loaded (the API loads none);
    None without the face models (FACES_ENABLED or FACE_IDENTITIES off)."""
    if getattr(models, "describer", None) is None:
        return None
    from vidwatch.library.photos import ModelPhotoFaces

    return ModelPhotoFaces(models)
