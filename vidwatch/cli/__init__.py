"""The ``vidwatch`` command."""

from vidwatch.cli.main import main

__all__ = ["main"]
