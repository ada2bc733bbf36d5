"""TOON twins of the frame JSON documents, written by the official ``@toon-format/toon``.

:class:`ToonBridge` keeps one Node helper (``runtime/convert_toon.mjs``) running and sends it
documents line by line; see :mod:`vidwatch.toon_bridge.client` for the protocol, the thread
model and what happens when the helper dies or hangs, and
:mod:`vidwatch.toon_bridge.node_runtime` for Node, npm and the runtime's packages.
"""

from vidwatch.toon_bridge.client import ToonBridge, ToonError
from vidwatch.toon_bridge.equivalence import json_difference, json_equivalent
from vidwatch.toon_bridge.node_runtime import RUNTIME_DIR, ToonUnavailable, pinned_version

__all__ = [
    "RUNTIME_DIR",
    "ToonBridge",
    "ToonError",
    "ToonUnavailable",
    "json_difference",
    "json_equivalent",
    "pinned_version",
]
