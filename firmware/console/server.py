"""Serving diagnostics as framed CBOR: on a serial port (the console) or a unix socket (local).

``vigil run`` serves its live ``Diagnostics`` on a unix socket; ``vigil console`` owns the
UART and forwards each request to that socket, answering by itself (with what a stopped
unit can still tell: storage, clock, broker, model, outputs, journal) when the unit is down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.console.auth import AuthError, ConsoleAuth
from firmware.console.framing import MAX_REQUEST, VERSION, FrameError, FrameReader, encode
from firmware.diag.handlers import DiagError

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
Dispatch = Callable[[str, dict[str, Any], Progress], dict[str, Any]]
DEFAULT_SOCKET = os.environ.get("VIGIL_DIAG_SOCKET", "/run/vigil/diag.sock")


def answer(msg: dict[str, Any], dispatch: Dispatch, send: Callable[[dict[str, Any]], None]) -> None:
    """Run one request and send its progress and reply (never raises for a bad request)."""
    rid = msg.get("id")
    cmd, args = msg.get("cmd"), msg.get("args") or {}
    if not isinstance(cmd, str) or not isinstance(args, dict):
        send(
            {
                "v": VERSION,
                "id": rid,
                "ok": False,
                "error": "malformed request",
                "hint": "expected {id, cmd, args}",
            }
        )
        return

    def progress(step: int, of: int, what: str) -> None:
        send({"v": VERSION, "id": rid, "progress": {"step": step, "of": of, "what": what}})

    try:
        result = dispatch(cmd, args, progress)
        reply = {"v": VERSION, "id": rid, "ok": True, "result": result}
    except DiagError as e:
        reply = {"v": VERSION, "id": rid, "ok": False, "error": e.message, "hint": e.hint}
    except Exception as e:
        log.exception("diagnostics command %s failed", cmd)
        reply = {
            "v": VERSION,
            "id": rid,
            "ok": False,
            "error": f"{cmd} failed: {e}",
            "hint": "see vigil-diag logs",
        }
    send(reply)


class ConsoleServer:
    """Answers requests arriving on a serial port (pyserial object or URL) until stopped.

    Read-only commands for anyone; the rest only with ``auth`` (firmware/console/auth.py).
    Requests are at most ``MAX_REQUEST`` bytes; a frame that stops arriving is dropped after
    a second, so a stray header never makes the console deaf.
    """

    def __init__(
        self,
        port: Any,
        dispatch: Dispatch,
        baudrate: int = 115200,
        auth: ConsoleAuth | None = None,
    ) -> None:
        import serial

        if isinstance(port, str):
            port = serial.serial_for_url(port, baudrate=baudrate, timeout=0.2, write_timeout=30)
        self.port = port
        self.dispatch = dispatch
        self.auth = auth if auth is not None else ConsoleAuth()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self.reader = FrameReader(port.read, max_payload=MAX_REQUEST)
        self.served = 0
        self.refused = 0

    def _guarded(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """The request to run (a self-test without auth never pulses outputs), or None after
        replying why it may not run; ``hello`` is answered here."""
        rid, cmd, args = msg.get("id"), msg.get("cmd"), msg.get("args") or {}
        if not isinstance(cmd, str) or not isinstance(args, dict):
            return msg  # answer() says it is malformed
        if cmd == "hello":
            self.send({"v": VERSION, "id": rid, "ok": True, "result": self.auth.hello()})
            return None
        auth = msg.get("auth")
        if cmd == "selftest" and auth is None and "outputs" not in args:
            msg = {**msg, "args": {**args, "outputs": False}}
            args = msg["args"]
        try:
            self.auth.check(cmd, args, auth)
        except AuthError as e:
            self.refused += 1
            log.warning("console: refused %s: %s", cmd, e.message)
            self.send({"v": VERSION, "id": rid, "ok": False, "error": e.message, "hint": e.hint})
            return None
        return msg

    def send(self, msg: dict[str, Any]) -> None:
        data = encode(msg)
        with self._write_lock:
            self.port.write(data)
            self.port.flush()

    def serve(self) -> None:
        """Blocking loop; returns when ``stop()`` is called or the port goes away."""
        import serial

        while not self._stop.is_set():
            try:
                msg = self.reader.read(timeout=0.5)
            except FrameError:
                continue
            except (serial.SerialException, OSError) as e:
                if not self._stop.is_set():
                    log.error("console port lost: %s", e)
                return
            self.served += 1
            msg = self._guarded(msg)
            if msg is not None:
                answer(msg, self.dispatch, self.send)

    def start(self) -> ConsoleServer:
        self._thread = threading.Thread(target=self.serve, name="vigil-console", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask ``serve()`` to return within half a second (safe from a signal handler: it
        closes nothing under a read in progress)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.port.close()


class LocalServer:
    """The running unit's diagnostics on a unix socket (one thread per connection)."""

    def __init__(self, path: str | Path, dispatch: Dispatch) -> None:
        self.path = Path(path)
        self.dispatch = dispatch
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(1.0)
                reader = FrameReader(lambda n: _recv(conn, n))
                lock = threading.Lock()

                def send(msg: dict[str, Any]) -> None:
                    with lock:
                        conn.sendall(encode(msg))

                while True:
                    try:
                        msg = reader.read(timeout=300)
                    except (FrameError, ConnectionError, OSError):
                        return
                    answer(msg, outer.dispatch, send)

        self.server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        self.server.daemon_threads = True
        os.chmod(self.path, 0o660)
        self._thread: threading.Thread | None = None

    def start(self) -> LocalServer:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="vigil-diag-socket", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _recv(conn: socket.socket, n: int) -> bytes:
    try:
        data = conn.recv(n)
    except TimeoutError:
        return b""
    if not data:
        raise ConnectionError("closed")
    return data


def local_request(
    path: str | Path,
    cmd: str,
    args: dict[str, Any],
    progress: Progress | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Send one request to the unit's socket; returns the reply message (ok or not).

    Raises ConnectionError when no unit listens there.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        s.connect(str(path))
        s.settimeout(1.0)
        s.sendall(encode({"v": VERSION, "id": 1, "cmd": cmd, "args": args}))
        reader = FrameReader(lambda n: _recv(s, n))
        while True:
            try:
                msg = reader.read(timeout=timeout)
            except FrameError as e:
                raise ConnectionError(f"the unit did not answer {cmd} in {timeout:.0f} s") from e
            if "progress" in msg:
                if progress is not None:
                    p = msg["progress"]
                    progress(p.get("step", 0), p.get("of", 0), p.get("what", ""))
                continue
            return msg
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise ConnectionError(f"no unit listening on {path}: {e}") from e
    finally:
        s.close()


class Bridge:
    """The console's dispatch: the running unit first, the stand-alone diagnostics otherwise."""

    def __init__(self, socket_path: str | Path, fallback: Dispatch) -> None:
        self.socket_path = Path(socket_path)
        self.fallback = fallback

    def __call__(self, cmd: str, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        try:
            reply = local_request(self.socket_path, cmd, args, progress)
        except ConnectionError as e:
            log.debug("unit not reachable (%s); answering stand-alone", e)
            return self.fallback(cmd, args, progress)
        if reply.get("ok"):
            return reply.get("result") or {}
        raise DiagError(str(reply.get("error")), str(reply.get("hint") or ""))
