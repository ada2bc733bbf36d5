"""The name rules of every intake path (``POST /analyze-video``, the inbox, the bucket,
``vidwatch analyze``), in one place.

A user's file name is only ever data: shown on the pages and kept in ``source.filename``.
``clean_filename`` makes it safe to show, the same way on every path: the last path
component only; control characters, line separators and bidirectional controls (U+202E
would show ``gpj.mp4`` for ``4pm.jpg``) removed; bytes that are not UTF-8 replaced with
U+FFFD; at most 255 bytes of UTF-8, cut on a character boundary with the extension kept.
Whatever it changed is said in a ``filename_changed`` warning for status.json. (NFC
normalisation, which changes bytes but never what is shown, is not counted as a change.)

``source_ext`` decides the extension of the stored source (and so its key and the type it
is served with): the name's when it is a video extension of ``keys.VIDEO_TYPES``, else the
container named by the first bytes, else the neutral ``bin``; never ``html``, ``svg``...
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidwatch.r2 import keys

MAX_NAME_BYTES = 255
MAX_EXT_CHARS = 16
SNIFF_BYTES = 512
FILENAME_CHANGED = "filename_changed"
"""The code of the warning that says how a name was cleaned."""

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""The bidirectional formatting characters (marks, embeddings, overrides, isolates)."""
_KEPT_FORMAT = frozenset("\u200c\u200d")
"""Zero-width (non-)joiners: format characters that scripts and emoji need."""
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class CleanName:
    """A cleaned name (None when nothing showable was left) and what cleaning changed."""

    name: str | None
    changes: tuple[str, ...] = ()
    original: str | None = None

    def warning(self) -> dict[str, Any] | None:
        """The ``filename_changed`` warning for status.json, or None when unchanged."""
        if not self.changes:
            return None
        return {
            "code": FILENAME_CHANGED,
            "message": f"the file name was changed to {self.name!r}: " + "; ".join(self.changes),
            "original": _escaped(self.original or "")[:600],
        }

    def warnings(self) -> list[dict[str, Any]]:
        warning = self.warning()
        return [] if warning is None else [warning]


def clean_filename(raw: str | None, *, path_allowed: bool = True) -> CleanName:
    """``raw`` made safe to show (see the module's rules), with what was changed.
    ``path_allowed``: a client may send ``dir/clip.mp4`` (the folder is dropped without a
    word); an inbox or bucket name has no folder part to drop."""
    if raw is None:
        return CleanName(None)
    changes: list[str] = []
    name = raw
    if path_allowed:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
    bidi = sorted({ch for ch in name if ch in BIDI_CONTROLS})
    kept: list[str] = []
    controls = invalid = 0
    for ch in name:
        category = unicodedata.category(ch)
        if ch in BIDI_CONTROLS:
            continue
        if category == "Cs":  # an undecodable byte of a file system name
            invalid += 1
            kept.append(_REPLACEMENT)
        elif (category[0] == "C" and ch not in _KEPT_FORMAT) or category in ("Zl", "Zp"):
            controls += 1
        else:
            kept.append(ch)
    name = unicodedata.normalize("NFC", "".join(kept))
    stripped = name.strip()
    if bidi:
        count = sum(1 for ch in raw if ch in BIDI_CONTROLS)
        codes = ", ".join(f"U+{ord(ch):04X}" for ch in bidi)
        changes.append(f"{count} bidirectional control character(s) removed ({codes})")
    if controls:
        changes.append(f"{controls} control character(s) removed")
    if invalid:
        changes.append(f"{invalid} byte(s) that are not UTF-8 replaced with U+FFFD")
    if stripped != name:
        changes.append("spaces at its ends removed")
    name = stripped
    if name in ("", ".", ".."):
        changes.append("nothing showable was left")
        return CleanName(None, tuple(changes), raw)
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        name = _cut(name)
        changes.append(
            f"cut from {size} to {len(name.encode('utf-8'))} bytes (at most "
            f"{MAX_NAME_BYTES}), its extension kept"
        )
    return CleanName(name, tuple(changes), raw if changes else None)


def _cut(name: str) -> str:
    """At most MAX_NAME_BYTES of UTF-8, on a character boundary, the extension kept."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > MAX_EXT_CHARS:
        stem, ext = name, ""
    tail = f".{ext}" if ext else ""
    room = MAX_NAME_BYTES - len(tail.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore").rstrip()
    return cut + tail


def _escaped(text: str) -> str:
    """``text`` with every character that is not shown as itself written ``\\uXXXX``."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        invisible = category[0] == "C" or category in ("Zl", "Zp") or ch in BIDI_CONTROLS
        out.append(f"\\u{ord(ch):04x}" if invisible else ch)
    return "".join(out)


def sniff_ext(head: bytes) -> str | None:
    """The usual extension of the container whose first bytes are ``head``, if known."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"OggS"):
        return "ogv"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpg"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return "ts"
    return None


def name_ext(name: str | None) -> str | None:
    """The extension of ``name`` when it is one of ``keys.VIDEO_TYPES`` (any case)."""
    if not name or "." not in name:
        return None
    ext = name.rsplit(".", 1)[-1].lower()
    return ext if ext in keys.VIDEO_TYPES else None


def source_ext(name: str | None, head: bytes) -> str:
    """The stored source's extension: the name's when it is a listed video extension,
    else the container its first bytes name, else ``bin``."""
    return name_ext(name) or sniff_ext(head) or keys.NEUTRAL_SOURCE_EXT


def file_head(path: Path) -> bytes:
    """The first bytes of a file for ``sniff_ext`` (empty when it cannot be read: the
    copy that follows reports that)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    except OSError:
        return b""
