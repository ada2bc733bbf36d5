"""The embedded default store: a local folder laid out like the bucket.

Writes are atomic (a temporary file renamed into place); ``If-None-Match`` is an atomic
``link()``; ``If-Match`` compares ETags under a file lock, so several processes on one
host may share the folder. Object metadata lives in a sidecar folder ``.meta``.

Files and folders get the modes a plain ``open()`` and ``mkdir()`` would give (0666 and
0777 less the umask: 0660/0770 under the unit's ``UMask=0007``, 0644/0755 in a terminal):
the staged files come from ``mkstemp``, which makes them 0600, and would keep members of
the service's group out of their own results.

A delete removes the folders it leaves empty. Another thread or process may be writing into
such a folder at that moment (it made the folder, the delete removed it, its rename or link
then finds no folder): the write makes the folder again and places its file again, so a
write never fails because of a concurrent delete.
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from vidwatch.r2.keys import content_type_for, is_job_id, stored_type
from vidwatch.r2.putpool import PUT_POOL_PER_WORKER, PutPool
from vidwatch.r2.store import (
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    PutItem,
    StorageFull,
    StoreError,
    UrlSigner,
)

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def _disk_full_is_storage_full(key: str, root: Path) -> Iterator[None]:
    """A write that finds the disk full raises StorageFull (code ``storage_full``), a
    StoreError like every other store failure, instead of a bare OSError."""
    try:
        yield
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise StorageFull(
                f"no space left for {key} in the store folder {root} ({exc.strerror})",
                setting="LOCAL_STORE_DIR",
            ) from None
        raise


_META = ".meta"
_TMP = ".tmp"
_PLACE_TRIES = 20
"""How often a file is placed again when a concurrent delete removed its emptied folder."""


def _place(dest: Path, place: Callable[[], None], source: Path | None = None) -> None:
    """Make ``dest``'s folder and run ``place`` (a rename or link of ``source`` into it, or a
    write there). A concurrent ``delete`` prunes folders it empties, so a folder may vanish
    at any moment, even inside ``mkdir`` (a parent it made, or the folder it found, is gone
    a moment later): then the folder is made again and ``place`` run again. A missing
    ``source`` is raised at once; anything else after ``_PLACE_TRIES`` tries."""
    for attempt in range(_PLACE_TRIES):
        last = attempt == _PLACE_TRIES - 1
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileNotFoundError, FileExistsError):  # a folder on the way made, then pruned
            if last:
                raise
            continue
        try:
            place()
            return
        except FileNotFoundError:
            if last or (source is not None and not source.exists()):
                raise


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (changing it,
    even for an instant, would touch files other threads create meanwhile)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


class LocalStore:
    """An ObjectStore in a folder of this host. ``url_signer`` makes its links (the HTTP
    API's ``/files`` route); without one, links are ``file://`` URIs, for this host only."""

    name = "local"
    expires_jobs = False  # the daemon's retention removes old jobs
    shared = False
    local_files = True

    def __init__(
        self,
        root: Path,
        *,
        url_signer: UrlSigner | None = None,
        workers: int = 8,
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _TMP).mkdir(exist_ok=True)
        self._file_mode = 0o666 & ~current_umask()
        self._url_signer = url_signer
        self._puts = PutPool(PUT_POOL_PER_WORKER * workers, name="local_put")
        self._lock = threading.Lock()

    # --- paths ----------------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        """The file behind ``key``; refuses keys that would leave the root."""
        if not key or key.startswith("/") or "\\" in key or "\0" in key:
            raise StoreError(f"invalid key: {key!r}")
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts) or parts[0] in (_META, _TMP):
            raise StoreError(f"invalid key: {key!r}")
        return self.root.joinpath(*parts)

    def _meta_path(self, key: str) -> Path:
        return self.root / _META / (key + ".json")

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        with self._lock, open(self.root / _TMP / ".lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # --- writes ---------------------------------------------------------------------------
    def _stage(self, write: Callable[[int], None]) -> Path:
        fd, tmp = tempfile.mkstemp(dir=self.root / _TMP, prefix="put-")
        try:
            os.fchmod(fd, self._file_mode)  # mkstemp's 0600 would hide it from the group
            write(fd)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return Path(tmp)

    def _commit(
        self,
        key: str,
        tmp: Path,
        content_type: str | None,
        metadata: dict[str, str] | None,
        if_none_match: bool,
        if_match: str | None,
    ) -> ObjectInfo:
        dest = self.path_for(key)
        # What this write placed, from the staged file itself (a rename or link keeps its
        # inode and mtime, so its ETag): reading the key back afterwards could meet a
        # concurrent delete, or another writer's object.
        placed = _info(key, os.stat(tmp), stored_type(key, content_type), metadata)
        try:
            if if_none_match or if_match is not None:
                with self._file_lock():
                    if if_none_match:

                        def link() -> None:
                            try:
                                os.link(tmp, dest)
                            except FileExistsError:
                                raise PreconditionFailed(f"{key} exists") from None

                        _place(dest, link, tmp)
                        os.unlink(tmp)
                    else:
                        current = self.head(key)
                        if current is None or current.etag != if_match:
                            raise PreconditionFailed(f"{key} changed")
                        _place(dest, lambda: os.replace(tmp, dest), tmp)
                    self._write_meta(key, content_type, metadata)
            else:
                _place(dest, lambda: os.replace(tmp, dest), tmp)
                self._write_meta(key, content_type, metadata)
        finally:
            tmp.unlink(missing_ok=True)
        return placed

    def _write_meta(
        self, key: str, content_type: str | None, metadata: dict[str, str] | None
    ) -> None:
        meta_path = self._meta_path(key)
        body = {
            "content_type": stored_type(key, content_type),
            "metadata": dict(metadata or {}),
        }
        tmp = meta_path.with_name(meta_path.name + f".{os.getpid()}.{threading.get_ident()}")

        def write() -> None:  # the sidecar's folder may be pruned too: write it again
            tmp.write_text(json.dumps(body))
            try:
                os.replace(tmp, meta_path)
            except FileNotFoundError:
                tmp.unlink(missing_ok=True)
                raise

        _place(meta_path, write)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        self.path_for(key)
        with _disk_full_is_storage_full(key, self.root):
            tmp = self._stage(lambda fd: _write_all(fd, data))
            return self._commit(key, tmp, content_type, metadata, if_none_match, if_match)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        self.path_for(key)

        def copy(fd: int) -> None:
            with open(path, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)

        with _disk_full_is_storage_full(key, self.root):
            tmp = self._stage(copy)
            return self._commit(key, tmp, content_type, metadata, False, None)

    def put_many(self, items: Iterable[PutItem]) -> list[ObjectInfo]:
        return self._puts.map(
            lambda i: self.put_bytes(i.key, i.data, content_type=i.content_type), list(items)
        )

    # --- reads ----------------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path_for(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def download_file(self, key: str, path: Path) -> None:
        src = self.path_for(key)
        if not src.is_file():
            raise ObjectNotFound(key)
        shutil.copyfile(src, path)

    def head(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        content_type, metadata = content_type_for(key), {}
        try:
            meta = json.loads(self._meta_path(key).read_text())
            content_type, metadata = meta["content_type"], meta["metadata"]
        except (FileNotFoundError, ValueError, KeyError):
            pass
        return _info(key, st, content_type, metadata)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d not in (_META, _TMP)]
                rel = ""
            base = "" if not rel else rel.replace(os.sep, "/") + "/"
            if base and not (base.startswith(prefix) or prefix.startswith(base)):
                dirnames[:] = []
                continue
            keys.extend(base + f for f in filenames if (base + f).startswith(prefix))
        for key in sorted(keys):
            info = self.head(key)
            if info is not None:
                yield info

    # --- deletes --------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        path = self.path_for(key)
        # Under the lock a conditional write holds from its ETag check to its rename: a
        # delete landing in between would be undone by that write (S3 would refuse it).
        with self._file_lock():
            path.unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
        # Remove folders left empty, up to the root.
        for parent in (path.parent, self._meta_path(key).parent):
            _prune_empty(parent, stop=self.root)

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)

    def list_job_ids(
        self,
        *,
        start_after: str | None = None,
        limit: int | None = None,
        page_size: int = 1000,
        others: builtins.list[str] | None = None,
    ) -> Iterator[str]:
        """The ``jobs`` folder's entries that are job ids (``page_size`` has no use here)."""
        try:
            with os.scandir(self.root / "jobs") as entries:
                folders = sorted(e.name for e in entries if e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return
        names = [n for n in folders if is_job_id(n)]
        if others is not None:
            others.extend(n for n in folders if not is_job_id(n) and not n.startswith("."))
        if start_after is not None:
            names = [n for n in names if n > start_after]
        yield from names if limit is None else names[: max(0, limit)]

    # --- links ----------------------------------------------------------------------------
    def signed_url(self, key: str, ttl_s: int) -> str:
        if self._url_signer is not None:
            return self._url_signer(key, ttl_s)
        return self.path_for(key).as_uri()

    def local_path(self, key: str) -> Path | None:
        try:
            path = self.path_for(key)
        except StoreError:
            return None
        return path if path.is_file() else None

    def location(self, prefix: str) -> str:
        where = str(self.root.joinpath(*[p for p in prefix.split("/") if p]))
        return where + "/" if prefix.endswith("/") else where

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"store folder {self.root} is not writable", setting="LOCAL_STORE_DIR")

    def close(self) -> None:
        self._puts.close()


def _info(
    key: str, st: os.stat_result, content_type: str | None, metadata: dict[str, str] | None
) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}",
        last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        content_type=content_type,
        metadata=dict(metadata or {}),
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _prune_empty(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
