"""The source clock: seconds on the camera's (or clip's) time line, still running between
frames, so timers (deterrent on-times, hub mutes) advance when the camera stalls."""

from __future__ import annotations

import time


class SourceClock:
    """The last frame's timestamp plus the wall time since it arrived."""

    def __init__(self) -> None:
        self._ts = 0.0
        self._wall = time.monotonic()

    def frame(self, timestamp: float) -> None:
        """A frame with this source timestamp arrived now."""
        self._ts, self._wall = timestamp, time.monotonic()

    def now(self) -> float:
        return self._ts + (time.monotonic() - self._wall)
