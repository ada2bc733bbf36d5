"""The ``vidwatch`` command."""

from vidwatch.cli.main import command, main

__all__ = ["command", "main"]
