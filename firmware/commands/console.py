"""`vigil console --port DEV`: the serial diagnostics console (vigil-console.service).

Forwards each request to the running unit (its diagnostics socket) and answers by itself
when the unit is down, so a field engineer always gets an answer on the UART.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

log = logging.getLogger("vigil.console")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="serial device (/dev/serial0) or a pyserial URL")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument(
        "--config", default="/etc/vigil/site.toml", help="site config (for stand-alone answers)"
    )
    p.add_argument(
        "--socket",
        default=None,
        help="the running unit's diagnostics socket (default /run/vigil/diag.sock)",
    )


def run(args: argparse.Namespace) -> int:
    import serial

    from firmware.config import ConfigError, load
    from firmware.console import DEFAULT_SOCKET, Bridge, ConsoleServer
    from firmware.diag import Diagnostics, UnitProbe

    try:
        loaded = load(args.config)
    except ConfigError as e:
        print(f"vigil console: {e}", file=sys.stderr)
        return 1
    try:
        port = serial.serial_for_url(args.port, baudrate=args.baud, timeout=0.2, write_timeout=30)
    except (serial.SerialException, ValueError) as e:
        print(f"vigil console: cannot open serial device {args.port}: {e}", file=sys.stderr)
        return 1
    probe = UnitProbe(
        loaded.config, config_path=Path(loaded.path) if loaded.path else None, live=False
    )
    standalone = Diagnostics(probe)
    bridge = Bridge(args.socket or DEFAULT_SOCKET, standalone.handle)
    server = ConsoleServer(port, bridge)
    signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    log.info("diagnostics console on %s at %d baud", args.port, args.baud)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
