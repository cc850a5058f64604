"""Reads a frame source on its own thread so a stalled camera never hangs the frame loop.

The loop asks for the next frame with a timeout. A source that delivers nothing for
``stall_timeout_s``, or fails, is abandoned and reopened (backoff doubling to 30 s), and a
health notice is queued for the loop to report. Replays can be paced at the clip's rate
(dropping frames when the loop is behind, as a live camera would) or read as fast as the
loop consumes them, and looped endlessly.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from firmware.sources.base import FrameSource, SourceError
from firmware.types import Frame

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


@dataclass(slots=True)
class SourceNotice:
    """Something the hub should hear about the camera: stalled, failed, reopened."""

    kind: str
    detail: str
    time: float


class FrameReader:
    def __init__(
        self,
        factory: Callable[[], FrameSource],
        *,
        paced: bool = True,
        loop: bool = False,
        stall_timeout_s: float = 2.0,
        backoff_s: float = 1.0,
        queue_size: int = 4,
    ):
        self._factory = factory
        self.paced = paced
        self.loop = loop
        self.stall_timeout_s = stall_timeout_s
        self.backoff_s = backoff_s
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._gen = 0
        self._stop = threading.Event()
        self._source: FrameSource | None = None
        self._next_index = 0
        self._time_offset = 0.0
        self._last_ts = 0.0
        self._backoff = backoff_s
        self._retry_at = 0.0
        self._last_frame_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self.ended = False
        self.notices: list[SourceNotice] = []
        self.frames = 0
        self.dropped = 0
        self.reopens = 0
        self.fps = 0.0
        self.name = ""
        self.live = False
        self.frame_count: int | None = None
        self.frame_size: tuple[int, int] = (0, 0)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source now (so a missing file or camera fails here, clearly) and start reading."""
        src = self._factory()
        src.open()
        self._adopt(src)

    def stop(self) -> None:
        """Stop reading; the reading thread closes its source (waits briefly for it)."""
        self._stop.set()
        self._gen += 1
        self._source = None
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _adopt(self, src: FrameSource) -> None:
        self._source = src
        self.fps, self.name, self.live = src.fps, src.name, src.live
        self.frame_count = getattr(src, "frame_count", None)
        self.frame_size = src.frame_size
        self._gen += 1
        self._last_frame_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(src, self._gen), name="frame-reader", daemon=True
        )
        self._thread.start()

    # -- the reading thread ----------------------------------------------------------------
    def _run(self, src: FrameSource, gen: int) -> None:
        """Owns ``src``: reads until told to stop or superseded, then closes it. A driver that
        never returns leaves this daemon thread behind; the loop has already moved on."""
        try:
            self._read_frames(src, gen)
        finally:
            _quiet_close(src)

    def _read_frames(self, src: FrameSource, gen: int) -> None:
        start_wall = time.monotonic()
        first_ts: float | None = None
        while not self._stop.is_set() and gen == self._gen:
            try:
                frame = src.read()
            except Exception as e:  # noqa: BLE001 - any driver failure becomes a health notice
                self._put(gen, ("error", f"{src.name}: read failed: {e}"), block=True)
                return
            if frame is None:
                if self.loop and not src.live:
                    try:
                        src.close()
                        src.open()
                    except Exception as e:  # noqa: BLE001
                        self._put(
                            gen,
                            ("error", f"{src.name}: cannot restart for --loop: {e}"),
                            block=True,
                        )
                        return
                    self._time_offset = self._last_ts + 1.0 / max(src.fps, 1e-6)
                    start_wall, first_ts = time.monotonic(), None
                    continue
                self._put(gen, ("eos", None), block=True)
                return
            if not src.live:
                frame.timestamp += self._time_offset
                self._last_ts = frame.timestamp
            if self.paced and not src.live:
                if first_ts is None:
                    first_ts = frame.timestamp
                delay = start_wall + (frame.timestamp - first_ts) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self._put(gen, ("frame", frame), block=not (src.live or self.paced))

    def _put(self, gen: int, item: tuple, block: bool) -> None:
        while not self._stop.is_set() and gen == self._gen:
            try:
                self._queue.put(item, timeout=0.2) if block else self._queue.put_nowait(item)
                return
            except queue.Full:
                if not block:  # live pacing: drop the oldest frame, keep the newest
                    try:
                        old = self._queue.get_nowait()
                        if old[0] == "frame":
                            self.dropped += 1
                        else:  # never drop an end-of-stream or error marker
                            self._queue.put_nowait(old)
                            return
                    except (queue.Empty, queue.Full):
                        pass

    # -- the loop's side -------------------------------------------------------------------
    def next(self, timeout: float = 0.5) -> Frame | None:
        """The next frame, or None when none came within ``timeout`` (see ``ended``)."""
        if self.ended:
            return None
        if self._source is None:
            self._try_reopen()
            return None
        deadline = time.monotonic() + min(timeout, self.stall_timeout_s)
        try:
            kind, item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self._check_stall()
            return None
        if kind == "frame":
            self._last_frame_at = time.monotonic()
            self._backoff = self.backoff_s
            item.index = self._next_index
            self._next_index += 1
            self.frames += 1
            return item
        if kind == "eos":
            self.ended = True
            return None
        self._fail(item)
        return None

    def _check_stall(self) -> None:
        since = self._last_frame_at
        if time.monotonic() - since >= self.stall_timeout_s:
            self._fail(f"{self.name}: no frame for {time.monotonic() - since:.1f} s")

    def _fail(self, detail: str) -> None:
        log.warning("camera problem: %s; reopening", detail)
        self.notices.append(
            SourceNotice("stalled" if "no frame" in detail else "failed", detail, time.time())
        )
        self._gen += 1  # the old reading thread sees this and closes its source
        self._source = None
        self._drain()
        self._retry_at = time.monotonic()
        self._try_reopen()

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _try_reopen(self) -> None:
        if time.monotonic() < self._retry_at or self._stop.is_set():
            time.sleep(min(0.05, max(0.0, self._retry_at - time.monotonic())))
            return
        try:
            src = self._factory()
            src.open()
        except (SourceError, OSError, RuntimeError) as e:
            self.notices.append(SourceNotice("failed", f"reopen failed: {e}", time.time()))
            log.warning("camera reopen failed: %s; next try in %.0f s", e, self._backoff)
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
            return
        self.reopens += 1
        self.notices.append(SourceNotice("reopened", f"{src.name} reopened", time.time()))
        self._last_frame_at = time.monotonic()
        self._adopt(src)

    def take_notices(self) -> list[SourceNotice]:
        out, self.notices = self.notices, []
        return out


def _quiet_close(src: FrameSource) -> None:
    try:
        src.close()
    except Exception:  # noqa: BLE001
        log.debug("closing %s failed", src.name, exc_info=True)
