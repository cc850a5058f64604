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
