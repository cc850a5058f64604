"""Per-stage timing of the frame loop, for the end-of-run summary and the hub's metrics.

capture: waiting for and decoding the next frame (in a paced replay, mostly waiting);
preprocess: resizing for the model and the detector's static-scene (background) prior;
inference: the model and its decoder; privacy: anonymising and recording.
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

STAGES = ("capture", "preprocess", "inference", "tracking", "rules", "act", "publish", "privacy")


@dataclass
class LoopMetrics:
    """Accumulates milliseconds per stage and frame times; cheap enough for every frame."""

    totals_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    dropped: int = 0
    started: float = field(default_factory=time.monotonic)
    _recent: deque = field(default_factory=lambda: deque(maxlen=64))

    def add(self, stage: str, ms: float) -> None:
        self.totals_ms[stage] = self.totals_ms.get(stage, 0.0) + ms

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - t) * 1000.0)

    def frame_done(self) -> None:
        self.frames += 1
        self._recent.append(time.monotonic())

    def fps_recent(self) -> float:
        """Frames per second over the last few dozen frames."""
        if len(self._recent) < 2:
            return 0.0
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else 0.0

    def fps_overall(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def per_frame_ms(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {k: v / n for k, v in self.totals_ms.items()}

    def snapshot(self) -> dict:
        """Plain numbers for the hub's metrics message and the summary."""
        return {
            "frames": self.frames,
            "dropped_frames": self.dropped,
            "fps": round(self.fps_recent(), 2),
            "fps_overall": round(self.fps_overall(), 2),
            "stage_ms": {k: round(v, 3) for k, v in self.per_frame_ms().items()},
        }

    def summary_lines(self) -> list[str]:
        per = self.per_frame_ms()
        total = sum(per.values()) or 1.0
        elapsed = time.monotonic() - self.started
        lines = [
            f"frames {self.frames}  dropped {self.dropped}  wall {elapsed:.1f} s  "
            f"fps {self.fps_overall():.1f}",
            f"{'stage':<12}{'ms/frame':>10}{'share':>8}",
        ]
        for name, ms in per.items():
            lines.append(f"{name:<12}{ms:>10.2f}{100 * ms / total:>7.1f}%")
        lines.append(f"{'total':<12}{total:>10.2f}")
        return lines
