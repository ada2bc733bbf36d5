"""vidwatch: scenes, objects, masks and faces for videos, as a daemon, an API and a CLI."""

__version__ = "0.1.0"
"""The one place the version is written; the package metadata reads it from here."""
