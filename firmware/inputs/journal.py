"""Till journal transports: a reader thread per source (serial port through pyserial, or a
TCP stream), reconnecting with backoff; lines go to a parser and records to a queue."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol

from firmware.inputs.config import TillConfig
from firmware.inputs.records import InputFault, InputRecord
from firmware.inputs.till import TillParser

log = logging.getLogger(__name__)
MAX_LINE = 4096  # a journal line longer than this is cut (a stuck stream, binary noise)


class LineStream(Protocol):
    """A byte stream read line by line; ``readline`` returns b"" on timeout."""

    def readline(self) -> bytes: ...
    def close(self) -> None: ...


class _SerialStream:
    def __init__(self, url: str, baudrate: int):
        import serial

        self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.5)

    def readline(self) -> bytes:
        return self._port.readline(MAX_LINE)

    def close(self) -> None:
        self._port.close()


class _TcpStream:
    def __init__(self, host: str, port: int):
        self._sock = socket.create_connection((host, port), timeout=5.0)
        self._sock.settimeout(0.5)
        self._buf = b""

    def readline(self) -> bytes:
        while b"\n" not in self._buf and len(self._buf) < MAX_LINE:
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError:
                return b""
            if not chunk:
                raise ConnectionError("the till closed the connection")
            self._buf += chunk
        line, sep, rest = self._buf.partition(b"\n")
        if not sep:
            line, rest = self._buf[:MAX_LINE], self._buf[MAX_LINE:]
        self._buf = rest
        return line + sep

    def close(self) -> None:
        self._sock.close()


def open_stream(source: str, baudrate: int = 9600) -> LineStream:
    """``serial://<pyserial URL or device>`` or ``tcp://HOST:PORT``."""
    if source.startswith("serial://"):
        return _SerialStream(source[len("serial://") :], baudrate)
    if source.startswith("tcp://"):
        host, port = source[len("tcp://") :].rsplit(":", 1)
        return _TcpStream(host, int(port))
    raise ValueError(f"till source {source!r}: expected serial://... or tcp://HOST:PORT")


class TillReader:
    """Reads the journal on its own thread; records are stamped on the monotonic clock."""

    def __init__(
        self,
        cfg: TillConfig,
        parser: TillParser,
        out: queue.Queue[InputRecord],
        opener: Callable[[str, int], LineStream] = open_stream,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg, self.parser, self.out = cfg, parser, out
        self._opener, self._clock = opener, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="till-reader", daemon=True)
        self.connected = False

    def start(self) -> TillReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        backoff = 1.0
        reported = False
        while not self._stop.is_set():
            try:
                stream = self._opener(self.cfg.source, self.cfg.baudrate)
            except (OSError, ValueError) as e:
                if not reported:
                    self._fault("till_unreadable", f"{self.cfg.source}: {e}")
                    reported = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self.connected, backoff, reported = True, 1.0, False
            try:
                self._read(stream)
            except (OSError, ConnectionError) as e:
                self._fault("till_unreadable", f"{self.cfg.source}: {e}")
                reported = True
            finally:
                self.connected = False
                stream.close()

    def _read(self, stream: LineStream) -> None:
        while not self._stop.is_set():
            raw = stream.readline()
            if not raw:
                continue
            line = raw.decode(self.cfg.encoding, errors="replace")
            before = self.parser.unparsed
            rec = self.parser.parse(line, self._clock())
            if rec is not None:
                self.out.put(rec)
            elif self.parser.unparsed > before and self.parser.unparsed in (1, 10, 100, 1000):
                self._fault(
                    "till_unparsed",
                    f"{self.parser.unparsed} line(s) not understood so far, latest: {line.strip()[:80]!r}",
                )

    def _fault(self, code: str, detail: str) -> None:
        log.warning("till: %s", detail)
        self.out.put(InputFault(self._clock(), self.parser.input, code, detail))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
