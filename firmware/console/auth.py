"""Who may act through the serial console: read-only commands for anyone at the UART, the
rest only with a provisioned console key or the hub's signature.

Anyone with a cable gets ``hello``, ``status``, ``selftest`` (outputs never pulsed),
``zones`` and ``outputs`` (their state). Everything that acts or shows more (``mute``,
``test_output``, ``selftest`` with outputs, ``snapshot``, ``logs``, ``bench``) needs an
``auth`` map in the request, made over a fresh nonce from ``hello`` (single use, valid
``NONCE_TTL_S``): ``{"nonce", "mac"}`` with the console key (HMAC-SHA256) or
``{"nonce", "sig"}`` with the hub's Ed25519 key, both over :func:`auth_input`. A recorded
request cannot be replayed (its nonce is spent) nor changed (the MAC covers cmd and args).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import cbor2

CONTEXT = "vigil-console/1"
NONCE_TTL_S = 120.0
MAX_NONCES = 8
KEY_BYTES = 32
FREE = frozenset({"hello", "status", "selftest", "zones", "outputs"})


class AuthError(Exception):
    """The request may not run: a message and a hint for the person at the keyboard."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def auth_input(nonce: bytes, cmd: str, args: dict[str, Any]) -> bytes:
    """What the MAC or signature covers: the context, the nonce, the command and its args."""
    return cbor2.dumps([CONTEXT, nonce, cmd, args], canonical=True)


def needs_auth(cmd: str, args: dict[str, Any]) -> bool:
    """Whether ``cmd`` acts (or shows images, logs): everything but the read-only set, and a
    self-test that would pulse the outputs."""
    from firmware.diag.handlers import COMMANDS  # an unknown command is refused as unknown

    if cmd == "selftest":
        return bool(args.get("outputs", True))
    return cmd in COMMANDS and cmd not in FREE


def load_console_key(path: str | Path) -> bytes:
    """The console key: a regular file holding 64 hex digits (32 random bytes), not all zeros.
    ``openssl rand -hex 32 > /etc/vigil/console.key`` makes one."""
    p = Path(path)
    st = os.stat(p)  # FileNotFoundError: not provisioned
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{p}: not a regular file")
    if st.st_size > 4096:
        raise ValueError(f"{p}: {st.st_size} bytes; a console key is 64 hex digits")
    text = p.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{p}: not hex (64 hex digits expected)") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{p}: {len(key)} bytes; a console key is {KEY_BYTES} bytes (64 hex)")
    if not any(key):
        raise ValueError(f"{p}: the key is all zeros")
    return key


def console_mac(key: bytes, nonce: bytes, cmd: str, args: dict[str, Any]) -> bytes:
    return hmac.new(key, auth_input(nonce, cmd, args), hashlib.sha256).digest()


class ConsoleAuth:
    """The console's side: hands out nonces, checks the ``auth`` of requests that act."""

    def __init__(
        self, console_key: bytes | None = None, hub_key: Any | None = None, now=time.monotonic
    ) -> None:
        self.console_key, self.hub_key, self.now = console_key, hub_key, now
        self._nonces: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self.failures = 0

    @property
    def methods(self) -> list[str]:
        return ["console-key"] * (self.console_key is not None) + ["hub-signature"] * (
            self.hub_key is not None
        )

    def hello(self) -> dict[str, Any]:
        nonce = os.urandom(16)
        with self._lock:
            t = self.now()
            self._nonces = {n: e for n, e in self._nonces.items() if e > t}
            while len(self._nonces) >= MAX_NONCES:
                self._nonces.pop(next(iter(self._nonces)))
            self._nonces[nonce] = t + NONCE_TTL_S
        return {"nonce": nonce, "auth": self.methods, "free": sorted(FREE)}

    def check(self, cmd: str, args: dict[str, Any], auth: Any) -> None:
        """Return when ``cmd`` may run; AuthError saying why not otherwise."""
        if not needs_auth(cmd, args):
            return
        if not self.methods:
            raise AuthError(
                f"{cmd} needs authentication and this unit has no console key nor hub key",
                "provision /etc/vigil/console.key (openssl rand -hex 32) or [link] hub_public_key",
            )
        hint = (
            f"vigil-diag --serial DEV --console-key FILE {cmd.replace('_', '-')} ... "
            "(or --key hub-key.pem); read-only without a key: " + ", ".join(sorted(FREE))
        )
        if not isinstance(auth, dict):
            raise AuthError(f"{cmd} needs authentication", hint)
        nonce = auth.get("nonce")
        with self._lock:
            expiry = self._nonces.pop(nonce, None) if isinstance(nonce, bytes) else None
        if expiry is None or expiry < self.now():
            self.failures += 1
            raise AuthError(f"{cmd}: unknown or expired nonce", "ask for a fresh one (hello)")
        data = auth_input(nonce, cmd, args)
        mac, sig = auth.get("mac"), auth.get("sig")
        if isinstance(mac, bytes) and self.console_key is not None:
            good = hmac.new(self.console_key, data, hashlib.sha256).digest()
            if hmac.compare_digest(mac, good):
                return
        elif isinstance(sig, bytes) and len(sig) == 64 and self.hub_key is not None:
            from cryptography.exceptions import InvalidSignature

            try:
                self.hub_key.verify(sig, data)
                return
            except InvalidSignature:
                pass
        self.failures += 1
        raise AuthError(f"{cmd}: authentication failed", "wrong console key or hub key")
