"""The API loads no model or video library: importing it in a fresh interpreter leaves
torch, OpenCV, PyAV, Ultralytics, PySceneDetect, facenet-pytorch and dlib unloaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "cv2", "av", "ultralytics", "scenedetect", "facenet_pytorch", "dlib")

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
heavy = {heavy!r}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))))
"""


def heavy_modules_after_import(*modules: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *modules],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_api_imports_no_heavy_library():
    api_modules = [
        "vidwatch.api",
        "vidwatch.api.app",
        "vidwatch.api.context",
        "vidwatch.api.routes_jobs",
        "vidwatch.api.routes_results",
        "vidwatch.api.routes_health",
        "vidwatch.api.routes_people",
        "vidwatch.api.people_pages",
        "vidwatch.library",
        "vidwatch.library.photos",
    ]
    assert heavy_modules_after_import(*api_modules) == []


@pytest.mark.parametrize(
    "module, loads", [("vidwatch.pipeline.video", "av"), ("vidwatch.pipeline.draw", "cv2")]
)
def test_the_probe_sees_a_heavy_import(module, loads):
    """The same probe on a module that needs one of them finds it (the check can fail)."""
    assert loads in heavy_modules_after_import(module)
