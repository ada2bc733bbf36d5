"""The version is written once (vidwatch/__init__.py); the package metadata, the CLI and
results.json's provenance all read that one."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import vidwatch

REPO = Path(__file__).resolve().parent.parent


def test_the_version_has_one_source():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("vidwatch") == vidwatch.__version__
