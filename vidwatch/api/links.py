"""Signed links for ``GET /results``: every artifact key of results.json becomes
``{"key": ..., "url": ...}``.

With the S3 store the URL is a presigned GET of the bucket. With the local store it is a
link to our own ``GET /files/{key}``, signed with an HMAC over key and expiry
(``vidwatch.r2.signing``). The HMAC secret is ``URL_SIGNING_SECRET`` when set, else a
random secret persisted in ``TEMP_MEDIA_DIR/.url-signing-key`` (created once, mode 0600),
so links stay valid across restarts for their whole TTL.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vidwatch.config import Settings
from vidwatch.r2 import keys
from vidwatch.r2.signing import sign, signed_file_url
from vidwatch.times import utc_time

SECRET_FILE = ".url-signing-key"

_request_base_url: ContextVar[str | None] = ContextVar("vidwatch_api_base_url", default=None)


def load_signing_secret(settings: Settings) -> bytes:
    """``URL_SIGNING_SECRET``, else the persisted secret of TEMP_MEDIA_DIR (made once)."""
    configured = settings.url_signing_secret
    if configured is not None:
        return configured.get_secret_value().encode()
    folder = Path(settings.temp_media_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SECRET_FILE
    for _ in range(5):
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if len(text) >= 32:
            return text.encode()
        # Written whole to a private temporary file, then linked into place: a reader never
        # sees a partial secret, and of two processes starting at once one secret wins.
        tmp = folder / f"{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            if text:  # present but unusable: replace it
                os.replace(tmp, path)
            else:
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    raise RuntimeError(f"cannot create the URL signing secret {path}")


def default_base_url(settings: Settings) -> str:
    """``PUBLIC_BASE_URL``, else ``http://HTTP_HOST:HTTP_PORT`` (loopback for a wildcard)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


@contextlib.contextmanager
def request_base_url(base_url: str) -> Iterator[None]:
    """Links signed inside this block point at ``base_url`` (the address the client used,
    unless PUBLIC_BASE_URL is set)."""
    token = _request_base_url.set(base_url.rstrip("/"))
    try:
        yield
    finally:
        _request_base_url.reset(token)


class FileLinkSigner:
    """The local store's URL signer: links to ``{base}/files/{key}?expires=&signature=``,
    which the API's ``/files`` route checks. ``secret`` may be a function, called once at
    first use (an S3 daemon never signs a file link and so never makes a secret)."""

    def __init__(self, secret: bytes | Callable[[], bytes], fallback_base_url: str) -> None:
        self._secret_source = secret
        self._secret_value: bytes | None = secret if isinstance(secret, bytes) else None
        self._lock = threading.Lock()
        self._fallback = fallback_base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings, secret: bytes | None = None) -> FileLinkSigner:
        """The signer the settings describe: ``secret``, else URL_SIGNING_SECRET, else the
        one persisted in TEMP_MEDIA_DIR; links to PUBLIC_BASE_URL, else HTTP_HOST:HTTP_PORT
        (a request's own address wins inside ``request_base_url``)."""
        return cls(secret or (lambda: load_signing_secret(settings)), default_base_url(settings))

    @property
    def _secret(self) -> bytes:
        if self._secret_value is None:
            with self._lock:
                if self._secret_value is None:
                    source = self._secret_source
                    self._secret_value = source if isinstance(source, bytes) else source()
        return self._secret_value

    def __call__(self, key: str, ttl_s: int) -> str:
        base = _request_base_url.get() or self._fallback
        return signed_file_url(base, self._secret, key, int(ttl_s))

    def check(self, key: str, expires: str | None, signature: str | None, now: float) -> str | None:
        """None when the link is valid, else the error code (``missing_signature``,
        ``invalid_signature`` or ``link_expired``). The signature is compared in constant
        time before the expiry is looked at."""
        if not expires or not signature:
            return "missing_signature"
        try:
            expires_at = int(expires)
        except ValueError:
            return "invalid_signature"
        if not hmac.compare_digest(
            sign(self._secret, key, expires_at).encode(), signature.encode()
        ):
            return "invalid_signature"
        if expires_at < now:
            return "link_expired"
        return None


def link_results(
    doc: dict[str, Any],
    job_id: str,
    signed_url: Callable[[str], str],
    ttl_s: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """results.json with each artifact key (``frames[*].images.*``, ``frames[*].json``,
    ``frames[*].toon``, ``exports.*``, ``people[*].thumbnail``) replaced by ``{"key": key,
    "url": signed URL}``; null stays null.
    Adds ``links: {ttl_s, expires_at}``. Keys outside the job's prefix are not signed."""
    prefix = keys.job_prefix(job_id)

    def link(key: Any) -> Any:
        if not isinstance(key, str):
            return key
        return {"key": key, "url": signed_url(key) if key.startswith(prefix) else None}

    for frame in doc.get("frames") or []:
        images = frame.get("images")
        if isinstance(images, dict):
            for kind in list(images):
                images[kind] = link(images[kind])
        for field in ("json", "toon"):
            if field in frame:
                frame[field] = link(frame[field])
    exports = doc.get("exports")
    if isinstance(exports, dict):
        for name in list(exports):
            exports[name] = link(exports[name])
    for person in doc.get("people") or []:
        if isinstance(person, dict) and "thumbnail" in person:
            person["thumbnail"] = link(person["thumbnail"])
    now = now or datetime.now(UTC)
    doc["links"] = {
        "ttl_s": int(ttl_s),
        "expires_at": utc_time((now + timedelta(seconds=int(ttl_s))).timestamp(), micros=False),
    }
    return doc
