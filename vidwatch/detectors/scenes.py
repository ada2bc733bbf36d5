"""Scene boundaries with PySceneDetect, fed the frames we already decoded.

PySceneDetect's SceneManager would open the video a second time; feeding its detector's
``process_frame`` ourselves keeps every frame decoded exactly once. Frames are downscaled
the way SceneManager does it (to about 256 px on the long side, linear interpolation), so
the cuts agree with the ``scenedetect`` command line. A decoded frame is asked for its
small copy (``Picture.resized``), which a 4:2:0 frame makes from its planes without the
full-size colour conversion that only the sampled frames need.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detectors import ContentDetector
from scenedetect.scene_manager import compute_downscale_factor


class Picture(Protocol):
    """A frame that gives a shrunk copy of itself without being converted whole
    (``vidwatch.pipeline.video.Frame``)."""

    @property
    def size(self) -> tuple[int, int]: ...

    def resized(self, size: tuple[int, int]) -> np.ndarray: ...


class SceneTracker(Protocol):
    """Stateful: sees every frame in order and reports cuts, possibly some frames late."""

    name: str
    delay_frames: int
    """Cuts are reported at most this many frames after the frame they fall on."""

    def push(self, index: int, frame: Picture | np.ndarray) -> list[int]:
        """``frame``: a decoded frame, or its BGR image."""
        ...

    def finish(self, last_index: int) -> list[int]: ...


class ContentSceneTracker:
    name = "content"

    def __init__(
        self,
        *,
        fps: float,
        threshold: float = 27.0,
        min_scene_len: int = 15,
        downscale_width: int = 256,
    ) -> None:
        self._fps = float(fps) if fps and fps > 0 else 25.0
        self._detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_len)
        self._downscale_width = downscale_width
        self._size: tuple[int, int] | None = None
        self.delay_frames = int(self._detector.event_buffer_length)

    def _small(self, frame: Picture | np.ndarray) -> np.ndarray:
        if isinstance(frame, np.ndarray):
            w, h = frame.shape[1], frame.shape[0]
        else:
            w, h = frame.size
        if self._size is None:
            factor = compute_downscale_factor(max(w, h), self._downscale_width)
            self._size = (
                (max(1, round(w / factor)), max(1, round(h / factor))) if factor > 1.0 else (w, h)
            )
        if not isinstance(frame, np.ndarray):
            return frame.resized(self._size)
        if (w, h) == self._size:
            return frame
        return cv2.resize(frame, self._size, interpolation=cv2.INTER_LINEAR)

    def _tc(self, index: int) -> FrameTimecode:
        return FrameTimecode(index, fps=self._fps)

    def push(self, index: int, frame: Picture | np.ndarray) -> list[int]:
        cuts = self._detector.process_frame(self._tc(index), self._small(frame))
        return [int(c.frame_num) for c in cuts]

    def finish(self, last_index: int) -> list[int]:
        cuts = self._detector.post_process(self._tc(last_index))
        return [int(c.frame_num) for c in cuts or []]
