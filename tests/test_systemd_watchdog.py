"""The systemd notify/watchdog client against a real unix datagram socket."""

from __future__ import annotations

import os
import socket

import pytest

from firmware.service import Watchdog


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.setblocking(False)
    yield str(path), s
    s.close()


def drain(s: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(s.recv(4096).decode())
        except BlockingIOError:
            return out


def test_no_op_outside_systemd():
    wd = Watchdog(env={})
    assert not wd.enabled and not wd.watchdog_enabled
    wd.ready()
    assert wd.frame_progressed() is False
    wd.status("x")
    wd.stopping()


def test_pings_only_while_frames_progress(notify_socket):
    path, s = notify_socket
    clock = FakeClock()
    wd = Watchdog(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}, clock=clock)
    assert wd.watchdog_enabled and wd.interval_s == pytest.approx(5.0)
    wd.ready("running")
    assert drain(s) == ["READY=1\nSTATUS=running"]
    # frames every 0.5 s for 20 s: a ping every half window (5 s), not per frame
    for _ in range(40):
        clock.t += 0.5
        wd.frame_progressed()
    msgs = drain(s)
    assert msgs == ["WATCHDOG=1"] * 4
    # the loop stalls: time passes, no frame -> no ping, whatever the time
    clock.t += 60.0
    assert drain(s) == []
    # frames resume: pinging resumes at once (the window has long passed)
    assert wd.frame_progressed() is True
    assert drain(s) == ["WATCHDOG=1"]
    wd.stopping()
    assert drain(s) == ["STOPPING=1"]


def test_watchdog_for_another_pid_is_ignored(notify_socket):
    path, s = notify_socket
    wd = Watchdog(
        env={
            "NOTIFY_SOCKET": path,
            "WATCHDOG_USEC": "1000000",
            "WATCHDOG_PID": str(os.getpid() + 1),
        }
    )
    assert wd.enabled and not wd.watchdog_enabled
    assert wd.frame_progressed() is False
    assert drain(s) == []


class StallingCamera:
    """A live source that delivers frames until ``stalled`` is set, then hangs in read()."""

    live = True
    fps = 20.0
    frame_size = (320, 240)

    def __init__(self, stalled, counter) -> None:
        self.name = "stalling-camera"
        self.stalled, self.counter = stalled, counter
        self.closed = False

    def open(self) -> None:
        pass

    def read(self):
        import time

        import numpy as np

        from firmware.types import Frame

        while self.stalled.is_set() and not self.closed:
            time.sleep(0.01)  # a hung driver: no frame, no error
        time.sleep(1 / self.fps)
        self.counter[0] += 1
        return Frame(self.counter[0], time.monotonic(), np.zeros((240, 320, 3), np.uint8))

    def close(self) -> None:
        self.closed = True


def test_frame_loop_pings_stop_when_frames_stop(notify_socket):
    """The real FrameLoop: pings while frames flow, none while the camera hangs, again after."""
    import threading
    import time

    from firmware.config import validate
    from firmware.detect import load_detector
    from firmware.loop import FrameLoop, Stages
    from firmware.rules import RuleEngine
    from firmware.sources import FrameReader
    from firmware.track import Tracker

    path, s = notify_socket
    cfg = validate({"link": {"mqtt": ""}})
    stalled, counter = threading.Event(), [0]
    reader = FrameReader(
        lambda: StallingCamera(stalled, counter), stall_timeout_s=0.5, backoff_s=0.2
    )
    reader.start()
    wd = Watchdog(
        env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    )  # ping every 0.1 s at most
    stages = Stages(
        reader=reader,
        detector=load_detector(cfg.detector),
        tracker=Tracker(cfg.tracker, fps=20.0),
        engine=RuleEngine(cfg, frame_size=(320, 240), fps=20.0),
        watchdog=wd,
    )
    loop = FrameLoop(stages)
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    pings: list[tuple[float, str]] = []

    def collect(seconds: float, until: str | None = None) -> list[str]:
        got, end = [], time.monotonic() + seconds
        while time.monotonic() < end and not (until and until in got):
            for m in drain(s):
                pings.append((time.monotonic(), m))
                got.append(m)
            time.sleep(0.02)
        return got

    try:
        flowing = collect(1.5)
        assert flowing[0].startswith("READY=1") and flowing.count("WATCHDOG=1") >= 2
        stalled.set()
        collect(0.8)  # frames already queued drain out
        frames_at_stall = loop.metrics.frames
        hung = collect(1.5)
        assert loop.metrics.frames == frames_at_stall  # no frame went through ...
        assert "WATCHDOG=1" not in hung  # ... so no ping: systemd would restart the unit
        stalled.clear()
        resumed = collect(5.0, until="WATCHDOG=1")
        assert resumed.count("WATCHDOG=1") >= 1 and loop.metrics.frames > frames_at_stall
    finally:
        loop.stop("test over")
        stalled.clear()
        t.join(timeout=10)
        reader.stop()
