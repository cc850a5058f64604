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
        "--console-key",
        default="/etc/vigil/console.key",
        help="the provisioned console key (64 hex digits; default /etc/vigil/console.key): "
        "with it, or a command signed by the hub's key, the console also acts (mute, outputs, snapshot)",
    )
    p.add_argument(
        "--socket",
        default=None,
        help="the running unit's diagnostics socket (default /run/vigil/diag.sock)",
    )


def console_auth(loaded, console_key_path: str | None):
    """The console's keys: the provisioned console key and the hub's public key, each when
    usable (a missing or bad one is logged; the console still serves read-only commands)."""
    from firmware.console.auth import ConsoleAuth, load_console_key
    from firmware.link.signing import load_public_key

    key = hub = None
    if console_key_path:
        try:
            key = load_console_key(console_key_path)
        except FileNotFoundError:
            log.info("console: no console key at %s", console_key_path)
        except (OSError, ValueError) as e:
            log.error("console: console key unusable (%s); ignored", e)
    hub_path = loaded.config.link.hub_public_key
    if hub_path:
        try:
            hub = load_public_key(loaded.resolve(hub_path))
        except (OSError, ValueError) as e:
            log.error("console: hub public key unusable (%s); ignored", e)
    auth = ConsoleAuth(key, hub)
    if not auth.methods:
        log.warning("console: no console key nor hub key: only read-only commands are answered")
    return auth


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
    server = ConsoleServer(port, bridge, auth=console_auth(loaded, args.console_key))
    signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    log.info("diagnostics console on %s at %d baud", args.port, args.baud)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
