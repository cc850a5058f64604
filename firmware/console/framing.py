"""Framed CBOR for the serial console (and the unit's local diagnostics socket).

One frame: ``A5 56`` magic, payload length (uint32 big-endian), the CBOR payload, CRC-32 of
the payload (uint32 big-endian). A reader that meets noise or a bad CRC drops a byte and
hunts for the next magic, so a glitch on the wire costs one message, not the session. A
length above the reader's ``max_payload`` (the console takes requests of at most
``MAX_REQUEST`` bytes) is noise, and a frame whose bytes stop coming for ``RESYNC_S`` is
abandoned the same way: a stray header declaring 1 MiB costs at most a second, not the
91 s that 1 MiB takes at 115200 baud.

Messages (CBOR maps):
  request   {"v": 1, "id": n, "cmd": "status", "args": {...}}
  progress  {"v": 1, "id": n, "progress": {"step": i, "of": n, "what": "storage"}}
  reply     {"v": 1, "id": n, "ok": true, "result": {...}}
            {"v": 1, "id": n, "ok": false, "error": "...", "hint": "..."}
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import cbor2

MAGIC = b"\xa5\x56"
HEADER = struct.Struct(">2sI")
MAX_PAYLOAD = 16 * 1024 * 1024  # replies (a snapshot PNG)
MAX_REQUEST = 64 * 1024  # what the console reads: requests are small maps
RESYNC_S = 1.0  # a frame whose bytes stop coming this long is abandoned
VERSION = 1


class FrameError(Exception):
    """A frame that could not be read (timeout, closed link)."""


def encode(msg: dict[str, Any]) -> bytes:
    payload = cbor2.dumps(msg)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"message of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(MAGIC, len(payload)) + payload + struct.pack(">I", zlib.crc32(payload))


class FrameReader:
    """Reads frames from ``read(n) -> bytes`` (a serial port's or socket's, with a timeout)."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        max_payload: int = MAX_PAYLOAD,
        resync_s: float = RESYNC_S,
    ) -> None:
        self._read = read
        self._buf = bytearray()
        self.max_payload = max_payload
        self.resync_s = resync_s
        self.dropped_bytes = 0
        self.bad_frames = 0
        self.resyncs = 0  # frames abandoned because their bytes stopped coming
        self._last_byte = time.monotonic()  # across read() calls: a short timeout still resyncs

    def _fill(
        self,
        n: int,
        deadline: float | None,
        on_bytes: Callable[[int], None] | None = None,
        idle_s: float | None = None,
    ) -> bool | None:
        """Read until ``n`` bytes are buffered: True; False at ``deadline``; None when no
        byte came for ``idle_s`` (a frame in progress that went quiet)."""
        while len(self._buf) < n:
            now = time.monotonic()
            if idle_s is not None and now - self._last_byte > idle_s:
                return None
            if deadline is not None and now > deadline:
                return False
            chunk = self._read(max(1, min(65536, n - len(self._buf))))
            if chunk:
                self._last_byte = time.monotonic()
                self._buf += chunk
                if on_bytes is not None:
                    on_bytes(len(self._buf))
        return True

    def read(
        self, timeout: float | None = None, on_bytes: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """The next valid message; FrameError on timeout. ``on_bytes(got, total)`` reports a long frame."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._fill(HEADER.size, deadline):
                raise FrameError("timed out waiting for a frame")
            i = self._buf.find(MAGIC)
            if i < 0:
                keep = 1 if self._buf.endswith(MAGIC[:1]) else 0
                self.dropped_bytes += len(self._buf) - keep
                del self._buf[: len(self._buf) - keep]
                continue
            if i > 0:
                self.dropped_bytes += i
                del self._buf[:i]
                continue
            _, length = HEADER.unpack_from(self._buf)
            if length > self.max_payload:
                self._resync()
                continue
            total = HEADER.size + length + 4
            cb = None if on_bytes is None else (lambda got, t=total: on_bytes(min(got, t), t))
            filled = self._fill(total, deadline, cb, self.resync_s)
            if filled is None:  # the rest never came: a stray header; hunt again from here
                self.resyncs += 1
                self._resync()
                continue
            if not filled:
                raise FrameError("timed out in the middle of a frame")
            payload = bytes(self._buf[HEADER.size : HEADER.size + length])
            (crc,) = struct.unpack_from(">I", self._buf, HEADER.size + length)
            if zlib.crc32(payload) != crc:
                self._resync()
                continue
            del self._buf[:total]
            try:
                msg = cbor2.loads(payload)
            except Exception:
                self.bad_frames += 1
                continue
            if isinstance(msg, dict):
                return msg
            self.bad_frames += 1

    def _resync(self) -> None:
        self.bad_frames += 1
        self.dropped_bytes += 1
        del self._buf[:1]
