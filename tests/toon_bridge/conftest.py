"""Fixtures of the TOON bridge tests: a real Node helper, shared by the module's tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from vidwatch.toon_bridge import ToonBridge


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not on PATH: the TOON bridge tests need Node.js >= 18 and npm")
    return found


@pytest.fixture(scope="module")
def bridge(node: str) -> Iterator[ToonBridge]:
    """One started bridge per test module (installs the runtime with `npm ci` if missing)."""
    with ToonBridge(node_binary=node) as b:
        yield b
