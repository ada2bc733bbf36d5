"""What the API is built from: one ``ApiContext``, given to ``create_app`` and handed to
every route as a FastAPI dependency (``Ctx``). Nothing is changed after the app starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from vidwatch.api.links import FileLinkSigner
from vidwatch.api.session import SessionStore
from vidwatch.api.throttle import LoginThrottle
from vidwatch.catalog import Catalog
from vidwatch.config import Settings
from vidwatch.jobs.staging import JobSpec
from vidwatch.library import PeopleLibrary
from vidwatch.library.photos import PhotoFaces
from vidwatch.r2 import quick_view
from vidwatch.r2.store import ObjectStore

UPLOAD_IDLE_TIMEOUT_S = 60.0
"""An upload that sends nothing for this long is dropped (408) with its staging folder."""
HEALTH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ApiContext:
    """The API's parts.

    - ``submit(spec)`` hands a staged job to the runner; QueueFull means 503.
    - ``health()`` returns ``{"ok": bool, ...}``: 200 when ok is True, else 503.
    - ``signer``: the URL signer the store was opened with. A store of local files
      (``store.local_files``) links to the API's ``/files`` route, which checks links with it.
    - ``notify(event, manifest)``: the webhooks' sender (``job.queued`` of an upload).
    - ``catalog``: the catalog of every job (``GET /search``, ``GET /jobs``); without one
      the job list lists the store and ``/search`` answers 503.
    """

    settings: Settings
    store: ObjectStore
    submit: Callable[[JobSpec], object]
    health: Callable[[], dict[str, Any]]
    signer: FileLinkSigner | None = None
    notify: Callable[..., None] | None = None
    catalog: Catalog | None = None
    library: PeopleLibrary | None = None
    """The people library (``/people``, names in results); made on ``store`` when not given
    and FACE_LIBRARY is on, None when it is off."""
    photo_faces: PhotoFaces | None = None
    """Faces of an enrolment photo: the daemon's loaded face models; None: ``POST /people``
    answers 503 (the API itself loads no model)."""
    upload_idle_timeout_s: float = UPLOAD_IDLE_TIMEOUT_S
    health_timeout_s: float = HEALTH_TIMEOUT_S
    reads: ObjectStore = field(init=False, repr=False)
    """The store for calls a client waits on (reads, and an upload's few small writes: its
    queued manifest, pending marker and Idempotency-Key): they give up within
    STORE_PROBE_TIMEOUT_S (503), not after the minute of retries that a running job's
    writes use to ride out an outage."""
    sessions: SessionStore = field(init=False, repr=False)
    """The pages' sign-in sessions, objects in the store (through ``reads``)."""
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle, repr=False)

    def __post_init__(self) -> None:
        if self.store.local_files and self.signer is None:
            raise ValueError(
                "a store of local files links to /files: give the URL signer it was opened with"
            )
        reads = quick_view(self.store, self.settings.store_probe_timeout_s)
        object.__setattr__(self, "reads", reads)  # frozen: set once, here
        if not self.settings.face_library:
            object.__setattr__(self, "library", None)
        elif self.library is None:
            library = PeopleLibrary(self.store, threshold=self.settings.face_match_threshold)
            object.__setattr__(self, "library", library)
        object.__setattr__(self, "sessions", SessionStore(reads))

    def base_url(self, request: Request) -> str:
        """PUBLIC_BASE_URL, else the address the client used."""
        return (self.settings.public_base_url or str(request.base_url)).rstrip("/")


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_context)]
"""A route's parameter ``ctx: Ctx`` receives the app's ApiContext."""
