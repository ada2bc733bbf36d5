"""The local store under concurrent writes and deletes in one folder.

A delete removes the folders it leaves empty; a write into such a folder at that moment
made the folder, then finds it gone when it links or renames its file into place. That once
failed an outbox write with a bare FileNotFoundError (two webhook senders on one store: one
delivered and deleted the last pending record while the other wrote a new one, and the
event was lost). The write must make the folder again and succeed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vidwatch.r2.local import LocalStore, _prune_empty
from vidwatch.r2.store import ObjectInfo, PreconditionFailed


def _delete_first(
    monkeypatch: pytest.MonkeyPatch, name: str, store: LocalStore, victim: str
) -> list[str]:
    """Make the store's next ``os.<name>`` into ``box/`` run after ``victim`` is deleted: the
    interleaving of a concurrent delete that empties (and so prunes) the folder just after
    the write made it."""
    real: Callable[..., Any] = getattr(os, name)
    fired: list[str] = []

    def racing(src: Any, dst: Any, *args: Any, **kw: Any) -> Any:
        if not fired and Path(dst).parent == store.root / "box":
            fired.append(str(dst))
            if name == "link":
                # A conditional write holds the store's lock, so a delete's unlink comes
                # before or after it; its pruning of the emptied folder, though, may land
                # in between: the delete's steps, with the unlink already done.
                store.path_for(victim).unlink()
                _prune_empty(store.path_for(victim).parent, stop=store.root)
            else:
                store.delete(victim)
            assert not (store.root / "box").exists()  # the delete pruned the folder
        return real(src, dst, *args, **kw)

    monkeypatch.setattr(os, name, racing)
    return fired


@pytest.mark.parametrize(
    ("op", "write"),
    [
        ("link", lambda s, tmp: s.put_bytes("box/new.json", b"new", if_none_match=True)),
        ("replace", lambda s, tmp: s.put_bytes("box/new.json", b"new")),
        ("replace", lambda s, tmp: s.put_file("box/new.json", tmp)),
    ],
    ids=["if_none_match", "put_bytes", "put_file"],
)
def test_a_write_survives_a_delete_pruning_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str, write: Callable[..., Any]
) -> None:
    store = LocalStore(tmp_path / "store")
    store.put_bytes("box/old.json", b"old")
    source = tmp_path / "new.bin"
    source.write_bytes(b"new")
    fired = _delete_first(monkeypatch, op, store, "box/old.json")
    info = write(store, source)
    assert fired, "the delete did not land inside the write"
    assert store.get_bytes("box/new.json") == b"new"
    head = store.head("box/new.json")
    assert head is not None and (info.etag, info.content_type) == (head.etag, head.content_type)
    assert [i.key for i in store.list("box/")] == ["box/new.json"]
    assert store.head("box/old.json") is None
    with pytest.raises(PreconditionFailed):  # still conditional after the retry
        store.put_bytes("box/new.json", b"other", if_none_match=True)


def test_a_write_returns_what_it_placed_even_if_deleted_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete that lands right after the rename: the put still returns its own object's
    ETag (it once read the key back and failed with a bare AssertionError)."""
    store = LocalStore(tmp_path / "store")
    store.put_bytes("box/new.json", b"first")
    real = os.replace
    fired: list[str] = []

    def racing(src: Any, dst: Any, *args: Any, **kw: Any) -> Any:
        result = real(src, dst, *args, **kw)
        if not fired and Path(dst).parent == store.root / "box":
            fired.append(str(dst))
            etags.append(store.head("box/new.json").etag)  # type: ignore[union-attr]
            store.delete("box/new.json")
        return result

    etags: list[str] = []
    monkeypatch.setattr(os, "replace", racing)
    info = store.put_bytes("box/new.json", b"second")
    assert fired and store.head("box/new.json") is None
    assert info.etag == etags[0] and info.size == len(b"second")
    assert info.content_type == "application/json"


def test_writes_and_deletes_in_one_folder_from_many_threads(tmp_path: Path) -> None:
    """Real threads, no injection: writers create records in ``outbox/`` (conditional and
    plain) while deleters remove each as soon as it is listed, emptying the folder again and
    again. Every write succeeds and every record is seen."""
    store = LocalStore(tmp_path / "store")
    errors: list[BaseException] = []
    written: set[str] = set()
    removed: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        try:
            for i in range(150):
                key = f"outbox/{n}-{i:04d}.json"
                store.put_bytes(key, b"{}", if_none_match=bool(i % 2))
                with lock:
                    written.add(key)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def deleter() -> None:
        try:
            while not stop.is_set():
                for info in store.list("outbox/"):
                    store.delete(info.key)
                    with lock:
                        removed.add(info.key)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    deleters = [threading.Thread(target=deleter) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in deleters + writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    deadline = time.monotonic() + 10
    while list(store.list("outbox/")) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for thread in deleters:
        thread.join(10)
    assert errors == []
    assert len(written) == 3 * 150 and removed == written


def test_a_delete_never_lands_between_an_if_match_check_and_its_write(tmp_path: Path) -> None:
    """A conditional write checks the ETag, then renames its file into place. A delete in
    between would be undone by the write: an object deleted, then back (S3 refuses such a
    write, as the object it was to match is gone). The delete waits for the write instead,
    so the object ends deleted, as the later of the two says."""
    deleted = threading.Event()

    class Store(LocalStore):
        def head(self, key: str) -> ObjectInfo | None:  # the If-Match check calls it
            info = super().head(key)
            if key == "lease.json" and not deleted.is_set():
                worker = threading.Thread(target=lambda: (self.delete(key), deleted.set()))
                worker.start()
                deleted.wait(0.5)  # the delete runs now, unless the write's lock holds it
            return info

    store = Store(tmp_path / "store")
    first = store.put_bytes("lease.json", b"one")
    store.put_bytes("lease.json", b"two", if_match=first.etag)
    assert deleted.wait(10)
    assert store.head("lease.json") is None, "the delete was undone by the conditional write"
