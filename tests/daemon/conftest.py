"""Fixtures of the daemon tests."""

from .service_harness import daemons

__all__ = ["daemons"]
