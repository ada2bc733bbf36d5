"""The ``vidwatch`` command's sub-commands: one whose module fails to import says why."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A Python with one broken dependency: importing ``vidwatch.daemon.service`` fails the way
# a missing package makes it fail, then the real command line runs.
BROKEN_RUN = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class Broken(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "vidwatch.daemon.service":
                raise ImportError("No module named 'apscheduler'", name="apscheduler")
            return None

    sys.meta_path.insert(0, Broken())
    from vidwatch.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _vidwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BROKEN_RUN, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_sub_command_whose_import_fails_shows_the_import_error():
    proc = _vidwatch("run", "--once")
    assert proc.returncode == 1, proc.stderr
    assert "invalid choice" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("vidwatch: the 'run' command is unavailable")
    assert "vidwatch.daemon.service" in last and "No module named 'apscheduler'" in last
    assert "Traceback" in proc.stderr  # where it failed, for the bug report


def test_the_other_sub_commands_still_work_and_help_lists_the_broken_one():
    proc = _vidwatch("--help")
    assert proc.returncode == 0, proc.stderr
    assert "{analyze,run,r2,people,catalog}" in proc.stdout
    assert "unavailable: No module named 'apscheduler'" in proc.stdout
    proc = _vidwatch("r2", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "lifecycle" in proc.stdout
