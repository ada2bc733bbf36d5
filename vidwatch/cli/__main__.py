"""``python -m vidwatch.cli``: the same as the ``vidwatch`` command."""

from vidwatch.cli.main import command

command()
