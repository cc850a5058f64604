"""systemd notify + watchdog without libsystemd: datagrams to $NOTIFY_SOCKET.

A no-op outside systemd. The frame loop calls ``frame_progressed()`` after each frame; a
``WATCHDOG=1`` ping goes out at most every half watchdog window (monotonic clock), and only
from there, so a loop that stops delivering frames stops the pings and systemd restarts it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Watchdog:
    """sd_notify: ``ready()``, ``frame_progressed()``, ``status(text)``, ``stopping()``."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = os.environ if env is None else env
        self._clock = clock
        self._addr = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        self.interval_s: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and (not pid or pid == str(os.getpid())):
            try:
                if int(usec) > 0:
                    self.interval_s = int(usec) / 1e6 / 2.0
            except ValueError:
                log.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        self._last_ping: float | None = None
        self.pings = 0

    @property
    def enabled(self) -> bool:
        """True under systemd (a notify socket is set)."""
        return self._addr is not None

    @property
    def watchdog_enabled(self) -> bool:
        return self.enabled and self.interval_s is not None

    def notify(self, message: str) -> bool:
        """Send one raw notify message; False (and no error) outside systemd or on failure."""
        if self._addr is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self._addr)
            return True
        except OSError as e:
            log.warning("sd_notify %r failed: %s", message.split("=")[0], e)
            return False

    def ready(self, status: str | None = None) -> None:
        """Startup is complete (Type=notify services count as started from here)."""
        msg = "READY=1" + (f"\nSTATUS={status}" if status else "")
        self.notify(msg)
        self._last_ping = self._clock()

    def frame_progressed(self) -> bool:
        """A frame went through the loop; pings the watchdog if half its window has passed."""
        if self.interval_s is None or self._addr is None:
            return False
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self.interval_s:
            return False
        if self.notify("WATCHDOG=1"):
            self._last_ping = now
            self.pings += 1
            return True
        return False

    def status(self, text: str) -> None:
        """One line shown by `systemctl status vigil`."""
        self.notify(f"STATUS={text}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _socket_address(path: str) -> str | bytes | None:
    if not path:
        return None
    if path.startswith("@"):
        return b"\0" + path[1:].encode()  # abstract namespace
    if path.startswith("/"):
        return path
    return None
