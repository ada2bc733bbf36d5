"""The upload of ``POST /analyze-video``: a multipart body parsed as it streams in.

The video part goes straight to ``TEMP_MEDIA_DIR/<job_id>/input/`` in chunks, never whole
in memory and never spooled elsewhere first; its bytes are counted as they arrive, so an
upload over ``MAX_UPLOAD_BYTES`` is refused (413) as soon as the limit is passed. Whatever
goes wrong (too large, malformed, a client that goes away or stalls), the job's staging
folder is removed and no job exists.

The client's file name is only ever data: it is cleaned for the manifest by the name rules
every intake path shares (``vidwatch.jobs.names``), and the staged file is always
``source.<ext>`` where ``<ext>`` is the name's when it is a video extension of the list,
else the container sniffed from the first bytes, else ``bin`` (never ``html``, ``svg``...).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from vidwatch.errors import VidwatchError
from vidwatch.jobs.names import clean_filename, source_ext
from vidwatch.jobs.names import sniff_ext as sniff_ext
from vidwatch.r2.local import DISK_FULL_ERRNOS

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
CLEANUP_FIELD = "cleanup_local_video_after_upload"
REANALYZE_FIELD = "reanalyze"
ENVELOPE_ALLOWANCE = 64 * 1024
"""Bytes of multipart framing (boundaries, part headers, the form field) allowed on top of
MAX_UPLOAD_BYTES, so that a video of exactly the limit is accepted."""
FLUSH_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64
MAX_PARTS = 8
PARTIAL_NAME = "upload.partial"


class UploadError(VidwatchError):
    """The upload is refused: ``status`` and ``code`` go into the JSON error answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Upload:
    path: Path
    """The staged source, ``<staging>/input/source.<ext>``."""
    filename: str | None
    """The client's name reduced to a plain file name (for the manifest only)."""
    ext: str
    size: int
    cleanup_override: bool | None
    sha256: str = ""
    """sha256 of the video's bytes, computed as they streamed in."""
    reanalyze: bool = False
    warnings: tuple[dict[str, Any], ...] = ()
    """What the name rules changed in the client's file name (for status.json)."""


def sanitize_filename(raw: str | None) -> str | None:
    """A client-supplied file name reduced to something safe to show (the shared name
    rules of ``vidwatch.jobs.names``)."""
    return clean_filename(raw).name


def parse_bool_field(value: bytes, name: str = CLEANUP_FIELD) -> bool:
    text = value.decode("utf-8", errors="replace").strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    raise UploadError(422, "invalid_field", f"{name} must be 'true' or 'false', not {text[:20]!r}")


def _decode_header(value: bytes) -> str:
    # python-multipart hands headers over as latin-1 bytes; browsers send UTF-8.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class _Receiver:
    """Callbacks of the streaming parser; file data is buffered here and written by the
    caller between chunks (off the event loop)."""

    def __init__(self, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.parts = 0
        self.headers: dict[str, bytes] = {}
        self._field = b""
        self._value = b""
        self.kind: str | None = None  # "file" | "cleanup" | "reanalyze"
        self.field_value = bytearray()
        self.file_seen = False
        self.file_done = False
        self.filename: str | None = None
        self.name_warnings: tuple[dict[str, Any], ...] = ()
        self.cleanup: bool | None = None
        self.reanalyze: bool | None = None
        self.size = 0
        self.head = bytearray()
        self.pending = bytearray()
        self.ended = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadError(
                422, "too_many_fields", f"at most {MAX_PARTS} form fields are accepted"
            )
        self.headers, self.kind = {}, None
        self._field, self._value = b"", b""
        self.field_value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self._field.decode("latin-1").strip().lower()] = self._value
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise UploadError(
                400,
                "malformed_multipart",
                "every part needs 'Content-Disposition: form-data; name=...'",
            )
        name = _decode_header(options[b"name"])
        if name == FILE_FIELD:
            if self.file_seen:
                raise UploadError(422, "too_many_files", "send one video in the field 'file'")
            self.file_seen = True
            self.kind = "file"
            raw = _decode_header(options[b"filename"]) if b"filename" in options else None
            cleaned = clean_filename(raw)
            self.filename, self.name_warnings = cleaned.name, tuple(cleaned.warnings())
        elif name == CLEANUP_FIELD:
            if self.cleanup is not None:
                raise UploadError(422, "invalid_field", f"{CLEANUP_FIELD} is given twice")
            self.kind = "cleanup"
        elif name == REANALYZE_FIELD:
            if self.reanalyze is not None:
                raise UploadError(422, "invalid_field", f"{REANALYZE_FIELD} is given twice")
            self.kind = "reanalyze"
        else:
            raise UploadError(
                422,
                "unknown_field",
                f"unknown form field {name[:40]!r}; the fields are "
                f"'{FILE_FIELD}' (the video), '{CLEANUP_FIELD}' and '{REANALYZE_FIELD}' "
                "(true/false)",
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.kind == "file":
            count = end - start
            self.size += count
            if self.size > self.max_file_bytes:
                raise UploadError(
                    413,
                    "upload_too_large",
                    f"the video is larger than MAX_UPLOAD_BYTES={self.max_file_bytes} bytes",
                )
            if len(self.head) < 512:
                self.head += data[start : min(end, start + 512 - len(self.head))]
            self.pending += data[start:end]
        elif self.kind in ("cleanup", "reanalyze"):
            self.field_value += data[start:end]
            if len(self.field_value) > MAX_FIELD_BYTES:
                name = CLEANUP_FIELD if self.kind == "cleanup" else REANALYZE_FIELD
                raise UploadError(422, "invalid_field", f"{name} must be 'true' or 'false'")

    def on_part_end(self) -> None:
        if self.kind == "file":
            self.file_done = True
        elif self.kind == "cleanup":
            self.cleanup = parse_bool_field(bytes(self.field_value))
        elif self.kind == "reanalyze":
            self.reanalyze = parse_bool_field(bytes(self.field_value), REANALYZE_FIELD)
        self.kind = None

    def on_end(self) -> None:
        self.ended = True


def boundary_of(request: Request) -> bytes:
    ctype, options = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data":
        raise UploadError(
            415,
            "unsupported_media_type",
            "send the video as multipart/form-data in the field 'file'",
        )
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise UploadError(400, "malformed_multipart", "the multipart boundary is missing")
    return boundary


def check_declared_length(request: Request, max_body_bytes: int) -> None:
    """413 at once, before a byte of the body is read, when Content-Length says too much."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise UploadError(400, "invalid_request", "Content-Length is not a number") from None
    if length > max_body_bytes:
        raise UploadError(
            413,
            "upload_too_large",
            f"the request body of {length} bytes is larger than "
            f"MAX_UPLOAD_BYTES={max_body_bytes - ENVELOPE_ALLOWANCE} bytes "
            "(plus the form's framing)",
        )


async def receive_upload(
    request: Request, *, input_dir: Path, max_file_bytes: int, idle_timeout_s: float
) -> Upload:
    """Stream the multipart body into ``input_dir``; return the staged upload.

    Raises UploadError (the answer to give), ClientDisconnect, or TimeoutError when no byte
    arrived for ``idle_timeout_s``. The caller removes the staging folder on any error.
    """
    max_body_bytes = max_file_bytes + ENVELOPE_ALLOWANCE
    check_declared_length(request, max_body_bytes)
    boundary = boundary_of(request)
    try:
        return await _receive(
            request, boundary, input_dir, max_file_bytes, max_body_bytes, idle_timeout_s
        )
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise UploadError(
                507,
                "storage_full",
                "the daemon's staging disk (TEMP_MEDIA_DIR) has no room for this upload "
                f"({exc.strerror}); nothing was kept, try again later",
            ) from None
        raise


def check_free_space(request: Request, folder: Path) -> None:
    """507 at once, before a byte is read, when Content-Length says more than the staging
    disk has free."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if int(declared) > free:
        raise UploadError(
            507,
            "storage_full",
            f"the upload of {int(declared)} bytes does not fit in the {free} bytes free on "
            "the daemon's staging disk (TEMP_MEDIA_DIR); nothing was kept, try again later",
        )


async def _receive(
    request: Request,
    boundary: bytes,
    input_dir: Path,
    max_file_bytes: int,
    max_body_bytes: int,
    idle_timeout_s: float,
) -> Upload:
    await anyio.to_thread.run_sync(lambda: input_dir.mkdir(parents=True, exist_ok=True))
    await anyio.to_thread.run_sync(check_free_space, request, input_dir)
    partial = input_dir / PARTIAL_NAME
    receiver = _Receiver(max_file_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())
    fh = await anyio.to_thread.run_sync(open, partial, "wb")
    digest = hashlib.sha256()
    body_bytes = 0
    try:
        more = True
        while more:
            with anyio.fail_after(idle_timeout_s):
                message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            body_bytes += len(chunk)
            if body_bytes > max_body_bytes:
                raise UploadError(
                    413,
                    "upload_too_large",
                    f"the request body is larger than MAX_UPLOAD_BYTES="
                    f"{max_file_bytes} bytes (plus the form's framing)",
                )
            if chunk:
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    raise UploadError(
                        400, "malformed_multipart", f"the multipart body cannot be parsed: {exc}"
                    ) from None
            if len(receiver.pending) >= FLUSH_BYTES or (not more and receiver.pending):
                data, receiver.pending = bytes(receiver.pending), bytearray()
                await anyio.to_thread.run_sync(_write_hashed, fh, digest, data)
        parser.finalize()
        if not receiver.ended:
            raise UploadError(
                400, "malformed_multipart", "the body ended before the closing multipart boundary"
            )
        if not receiver.file_seen or not receiver.file_done:
            raise UploadError(
                422, "missing_file", f"no video: send it in the multipart field '{FILE_FIELD}'"
            )
        await anyio.to_thread.run_sync(_flush_and_sync, fh)
    finally:
        with contextlib.suppress(OSError):  # flushed above; on an error path it is moot
            fh.close()
    ext = source_ext(receiver.filename, bytes(receiver.head))
    dest = input_dir / f"source.{ext}"
    await anyio.to_thread.run_sync(os.replace, partial, dest)
    return Upload(
        path=dest,
        filename=receiver.filename,
        ext=ext,
        size=receiver.size,
        cleanup_override=receiver.cleanup,
        sha256=digest.hexdigest(),
        reanalyze=bool(receiver.reanalyze),
        warnings=receiver.name_warnings,
    )


def _write_hashed(fh: BinaryIO, digest: hashlib._Hash, data: bytes) -> None:
    digest.update(data)
    fh.write(data)


def _flush_and_sync(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def remove_staging(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
