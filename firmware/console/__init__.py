"""The serial diagnostics console: framed CBOR over pyserial (see framing.py for the format)."""

from firmware.console.framing import FrameError, FrameReader, encode
from firmware.console.server import (
    DEFAULT_SOCKET,
    Bridge,
    ConsoleServer,
    LocalServer,
    local_request,
)

__all__ = [
    "DEFAULT_SOCKET",
    "Bridge",
    "ConsoleServer",
    "FrameError",
    "FrameReader",
    "LocalServer",
    "encode",
    "local_request",
]
