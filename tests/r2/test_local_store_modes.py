"""Issue 25 (10): the local store's files are readable by the service's group. They were
0600 (the staged file comes from mkstemp): members of the group the README tells users to
join could not open status.json, report.html or the exports."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vidwatch.r2.local import LocalStore, current_umask


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o027, 0o640, 0o750), (0o007, 0o660, 0o770)]
)
def test_files_and_folders_take_the_umask_like_any_new_file(tmp_path, umask, file_mode, dir_mode):
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        store = LocalStore(tmp_path / "store")
        source = tmp_path / "clip.bin"
        source.write_bytes(b"video")
        store.put_bytes("jobs/01J0000000000000000000000A/status.json", b"{}")
        store.put_file("jobs/01J0000000000000000000000A/input/source.mp4", source)
        store.put_bytes("jobs/01J0000000000000000000000A/report.html", b"<p>", if_none_match=True)
        store.close()
    finally:
        os.umask(previous)
    job = tmp_path / "store" / "jobs" / "01J0000000000000000000000A"
    for name in ("status.json", "input/source.mp4", "report.html"):
        assert oct(_mode(job / name)) == oct(file_mode), name
    assert oct(_mode(job)) == oct(dir_mode)
    assert oct(_mode(job / "input")) == oct(dir_mode)
    meta = tmp_path / "store" / ".meta" / "jobs" / "01J0000000000000000000000A" / "status.json.json"
    assert oct(_mode(meta)) == oct(file_mode)
