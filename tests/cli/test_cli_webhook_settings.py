"""``vidwatch run`` with bad webhook settings stops at once: exit 2, one line naming the
setting, the secret never printed."""

from __future__ import annotations

import pytest

from tests.cli.refused_start import run_once

SECRET = "whsec_" + "QUJD" * 8  # valid base64, 24 bytes


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"WEBHOOK_URLS": "ftp://127.0.0.1/in", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URLS"),
        ({"WEBHOOK_URLS": "file:///etc/passwd", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URLS"),
        ({"WEBHOOK_URLS": "http://127.0.0.1:9/in"}, "WEBHOOK_SECRET"),
        (
            {"WEBHOOK_URLS": "http://127.0.0.1:9/in", "WEBHOOK_SECRET": "hunter2hunter2"},
            "WEBHOOK_SECRET",
        ),
    ],
)
def test_run_refuses_bad_webhook_settings_in_one_line(tmp_path, env, name):
    proc, lines = run_once(tmp_path, env, drop=lambda k: k.startswith("WEBHOOK_"))
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and name in lines[0], proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    assert SECRET not in proc.stderr + proc.stdout
