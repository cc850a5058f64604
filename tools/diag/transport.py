"""How `vigil-diag` reaches a unit: the serial console, or the hub link over MQTT.

A transport sends one command and returns its result, calling ``progress`` on the way;
``Unreachable`` (no device, no broker, no answer) and ``CommandFailed`` (the unit said no)
carry a message and a hint for the person at the keyboard.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

Progress = Callable[[int, int, str], None]
Bytes = Callable[[int, int], None]
RESEND_S = 3.0  # resend a request that got no answer at all (not even progress) this fast


class Unreachable(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class CommandFailed(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class Transport(Protocol):
    name: str

    def request(
        self,
        cmd: str,
        args: dict[str, Any],
        progress: Progress | None = None,
        on_bytes: Bytes | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...


class SerialTransport:
    """Framed CBOR over a serial port to `vigil console` on the unit's UART.

    With ``console_key`` (the unit's provisioned console key) or ``signer`` (the hub's
    key), a command that acts is sent with an ``auth`` over a fresh nonce from ``hello``
    (firmware/console/auth.py); without, only the read-only commands are answered.
    """

    name = "serial"

    def __init__(
        self,
        device: str,
        baudrate: int = 115200,
        console_key: bytes | None = None,
        signer: Any | None = None,
    ) -> None:
        import serial

        from firmware.console.framing import FrameReader

        self.device = device
        try:
            self.port = serial.serial_for_url(
                device, baudrate=baudrate, timeout=0.2, write_timeout=10
            )
        except (serial.SerialException, ValueError, OSError) as e:
            reason = (
                "not found" if "No such file" in str(e) or "could not open" in str(e) else str(e)
            )
            raise Unreachable(
                f"serial device {device}: {reason}",
                "plug in the USB-serial adapter (ls /dev/ttyUSB* /dev/ttyACM*); you may need the dialout group",
            ) from None
        self.port.reset_input_buffer()
        self.reader = FrameReader(self.port.read)
        self._ids = itertools.count(1)
        self.console_key, self.signer = console_key, signer

    @property
    def authenticated(self) -> bool:
        return self.console_key is not None or self.signer is not None

    def request(
        self,
        cmd: str,
        args: dict[str, Any],
        progress: Progress | None = None,
        on_bytes: Bytes | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        from firmware.console.auth import auth_input, console_mac, needs_auth

        auth = None
        if self.authenticated and needs_auth(cmd, args):
            nonce = self._exchange("hello", {}, None, None, None, min(timeout, 15.0))["nonce"]
            if self.console_key is not None:
                auth = {"nonce": nonce, "mac": console_mac(self.console_key, nonce, cmd, args)}
            else:
                sig = self.signer.key.sign(auth_input(nonce, cmd, args))
                auth = {"nonce": nonce, "sig": sig}
        return self._exchange(cmd, args, auth, progress, on_bytes, timeout)

    def _exchange(
        self,
        cmd: str,
        args: dict[str, Any],
        auth: dict[str, Any] | None,
        progress: Progress | None,
        on_bytes: Bytes | None,
        timeout: float,
    ) -> dict[str, Any]:
        import serial

        from firmware.console.framing import VERSION, FrameError, encode

        rid = next(self._ids)
        request: dict[str, Any] = {"v": VERSION, "id": rid, "cmd": cmd, "args": args}
        if auth is not None:
            request["auth"] = auth
        frame = encode(request)
        deadline = time.monotonic() + timeout
        heard = False
        try:
            self.port.write(frame)
            self.port.flush()
            while True:
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        raise FrameError("timed out")
                    msg = self.reader.read(
                        timeout=left if heard else min(left, RESEND_S), on_bytes=on_bytes
                    )
                except FrameError:
                    if not heard and deadline - time.monotonic() > 0:
                        # nothing back yet: the console may have been (re)starting; ask again
                        self.port.write(frame)
                        self.port.flush()
                        continue
                    raise Unreachable(
                        f"no answer from the unit on {self.device} within {timeout:.0f} s",
                        "is vigil-console running on the unit (systemctl status vigil-console)? same baud rate? TX/RX crossed?",
                    ) from None
                if msg.get("id") != rid:
                    continue  # a late answer to an earlier, timed-out request
                heard = True
                if "progress" in msg:
                    if progress is not None:
                        p = msg["progress"]
                        progress(p.get("step", 0), p.get("of", 0), p.get("what", ""))
                    continue
                if msg.get("ok"):
                    return msg.get("result") or {}
                raise CommandFailed(str(msg.get("error")), str(msg.get("hint") or ""))
        except (serial.SerialException, OSError) as e:
            raise Unreachable(
                f"serial device {self.device} failed: {e}", "check the cable"
            ) from None

    def close(self) -> None:
        self.port.close()
