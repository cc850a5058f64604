"""What diagnostics can see of a running unit: the frame loop feeds a ``UnitProbe``.

The loop calls ``probe.frame(frame, detections, tracks, stage_ms)`` once per frame (a few
attribute stores: cheap) and ``probe.event(ev)`` per event. Diagnostics read it from
another thread (console, link) under a lock. A probe with ``live=False`` stands for a unit
whose service is not running (the serial console on its own).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from firmware.config.schema import VigilConfig
    from firmware.events.records import Event
    from firmware.types import Detections, Frame, Tracks


class RingLogHandler(logging.Handler):
    """Keeps the last ``capacity`` log records as plain dicts for `vigil-diag logs`."""

    def __init__(self, capacity: int = 500, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(
                {
                    "time": record.created,
                    "level": record.levelname,
                    "logger": record.name,
                    "message": record.getMessage(),
                }
            )
        except Exception:  # never let logging break the loop
            self.handleError(record)

    def tail(self, n: int, min_level: int = logging.DEBUG) -> list[dict[str, Any]]:
        rows = [r for r in list(self.records) if logging.getLevelName(r["level"]) >= min_level]
        return rows[-n:] if n > 0 else []


@dataclass
class LastFrame:
    """The loop's last frame. ``image`` is raw (only for in-process self-test and bench);
    ``stored`` is the anonymised frame the loop produced for storage, the only image that
    may leave the unit (None when the unit anonymises nothing)."""

    image: np.ndarray
    index: int
    timestamp: float
    detections: Detections | None
    tracks: Tracks | None
    inference_ok: bool
    scale_from: tuple[int, int] | None
    stored: np.ndarray | None = None


class UnitProbe:
    """Thread-safe window onto the unit's loop for status, self-test and snapshots."""

    def __init__(
        self,
        cfg: VigilConfig,
        *,
        config_path: Path | None = None,
        deterrents: Any = None,
        link: Any = None,
        live: bool = True,
        clock: Callable[[], float] = time.monotonic,
        detector_factory: Callable[[], Any] | None = None,
        pin_factory: Any = None,
    ) -> None:
        """``pin_factory``: the gpiozero factory a standalone self-test opens outputs with
        (None: firmware.deter.pins resolves the board's)."""
        self.cfg = cfg
        self.pin_factory = pin_factory
        self.config_path = config_path
        self.deterrents = deterrents
        self.link = link
        self.live = live
        self.detector_factory = detector_factory
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.started_wall = time.time()
        self.frames = 0
        self._frame_times: collections.deque[float] = collections.deque(maxlen=120)
        self._last: LastFrame | None = None
        self.stage_ms: dict[str, float] = {}
        self.events_total = 0
        self.events_by_type: collections.Counter[str] = collections.Counter()
        self.recent_events: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.source: str | None = None
        self.logs = RingLogHandler()

    def attach(self, cfg: VigilConfig, deterrents: Any) -> None:
        """Point diagnostics at the stages of a newly applied config (hub config/set)."""
        with self._lock:
            self.cfg, self.deterrents = cfg, deterrents

    def install_log_handler(self, logger: logging.Logger | None = None) -> None:
        """Start keeping the unit's recent log lines (root logger by default)."""
        (logger or logging.getLogger()).addHandler(self.logs)

    def remove_log_handler(self, logger: logging.Logger | None = None) -> None:
        (logger or logging.getLogger()).removeHandler(self.logs)

    # ---- fed by the frame loop -----------------------------------------------------
    def frame(
        self,
        frame: Frame,
        detections: Detections | None = None,
        tracks: Tracks | None = None,
        stage_ms: dict[str, float] | None = None,
        *,
        inference_ok: bool = True,
        scale_from: tuple[int, int] | None = None,
        stored: np.ndarray | None = None,
    ) -> None:
        """Record one processed frame (keeps a reference, not a copy: the loop makes new arrays).
        ``stored`` is the anonymised image the loop made of it (what snapshots show)."""
        now = self._clock()
        with self._lock:
            self.frames += 1
            self._frame_times.append(now)
            self._last = LastFrame(
                frame.image,
                frame.index,
                frame.timestamp,
                detections,
                tracks,
                inference_ok,
                scale_from,
                stored,
            )
            if stage_ms:
                for k, v in stage_ms.items():
                    old = self.stage_ms.get(k)
                    self.stage_ms[k] = v if old is None else 0.9 * old + 0.1 * v

    def event(self, ev: Event) -> None:
        with self._lock:
            self.events_total += 1
            self.events_by_type[ev.type] += 1
            self.recent_events.append(
                {
                    "type": ev.type,
                    "rule": ev.rule,
                    "phase": str(ev.phase),
                    "time": ev.time,
                    "zone": ev.zone,
                }
            )

    # ---- read by diagnostics -----------------------------------------------------------
    def last_frame(self) -> LastFrame | None:
        with self._lock:
            return self._last

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            times = list(self._frame_times)
            fps = 0.0
            if len(times) >= 2 and times[-1] > times[0]:
                fps = (len(times) - 1) / (times[-1] - times[0])
            tracks = self._last.tracks if self._last is not None else None
            return {
                "live": self.live,
                "frames": self.frames,
                "fps": round(fps, 2),
                "last_frame_age_s": None if not times else round(now - times[-1], 3),
                "stage_ms": {k: round(v, 2) for k, v in self.stage_ms.items()},
                "people": 0 if tracks is None else len(tracks),
                "uptime_s": round(now - self.started, 1),
                "events": self.events_total,
                "events_by_type": dict(self.events_by_type),
                "source": self.source,
            }

    def wait_for_frames(self, n: int, timeout: float) -> bool:
        """Wait until ``n`` more frames went through (or ``timeout`` seconds)."""
        target = self.frames + n
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.frames >= target:
                return True
            time.sleep(0.02)
        return self.frames >= target
