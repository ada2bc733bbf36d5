"""Our own exceptions. Every error of ours derives from VidwatchError.

A job's failure is data: a code and a message in its manifest.
"""

from __future__ import annotations


class VidwatchError(Exception):
    """Base of every vidwatch error; ``code`` is a stable machine-readable name."""

    code = "vidwatch_error"


class JobError(VidwatchError):
    """A job cannot be processed; ``code`` goes into status.json's ``error``."""

    code = "job_failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class VideoError(JobError):
    """The source is not a video we can analyse (empty, not a container, truncated...)."""

    code = "invalid_video"


class JobInterrupted(VidwatchError):
    """The daemon is stopping: the job goes back to the queue, nothing is lost."""


class QueueFull(VidwatchError):
    """The runner's bounded queue is full; the caller should answer 503 / retry later."""
