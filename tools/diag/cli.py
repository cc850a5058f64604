"""`vigil-diag`: the field engineers' tool, over the serial console or the hub link.

    vigil-diag --serial /dev/ttyUSB0 status
    vigil-diag --serial /dev/ttyUSB0 selftest           (outputs are not pulsed without a key)
    vigil-diag --serial /dev/ttyUSB0 --console-key console.key snapshot -o aim.png
    vigil-diag --serial /dev/ttyUSB0 --key hub-key.pem mute 15
    vigil-diag --mqtt mqtts://hub:8883 --site shop-12 --unit cam-3 --key hub-key.pem logs -n 100

Tables for people, ``--json`` for scripts. Exit status: 0 ok, 1 a check or command failed,
2 bad usage, 3 the unit could not be reached (no device, no broker, no answer).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tools.diag import render
from tools.diag.mqtt import MqttTransport
from tools.diag.transport import CommandFailed, SerialTransport, Transport, Unreachable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vigil-diag", description="Vigil field diagnostics (serial console or MQTT)"
    )
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--serial", metavar="DEV", help="the unit's console: USB-serial adapter on its UART"
    )
    how.add_argument(
        "--mqtt", metavar="URL", help="through the hub broker, mqtt://HOST:PORT or mqtts://"
    )
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    p.add_argument("--site", help="site id (with --mqtt)")
    p.add_argument("--unit", help="unit id (with --mqtt)")
    p.add_argument(
        "--key",
        help="the hub's signing key, PEM (with --mqtt; with --serial it authenticates acting commands)",
    )
    p.add_argument(
        "--console-key",
        metavar="FILE",
        help="the unit's console key (64 hex digits, /etc/vigil/console.key on the unit), with --serial: "
        "needed for mute, test-output, snapshot, logs, bench and a self-test that pulses outputs",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for an answer (default 60)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("status", help="what the unit is doing now")
    s = sub.add_parser(
        "selftest", help="run every check; pass/fail with a hint to fix each failure"
    )
    s.add_argument(
        "--no-outputs", action="store_true", help="do not pulse deterrent outputs (store open)"
    )
    b = sub.add_parser("bench", help="time the detector on the unit")
    b.add_argument("--runs", type=int, default=20, help="inferences to time (default 20)")
    sn = sub.add_parser(
        "snapshot", help="save an anonymised frame with zones and tracks drawn (PNG)"
    )
    sn.add_argument(
        "-o", "--output", default="snapshot.png", help="PNG file to write (default snapshot.png)"
    )
    sn.add_argument(
        "--max-width",
        type=int,
        default=640,
        help="scale down to this width (default 640: about 25 s at 115200 baud)",
    )
    lg = sub.add_parser("logs", help="the unit's recent log lines")
    lg.add_argument("-n", "--lines", type=int, default=50, help="how many (default 50)")
    lg.add_argument(
        "--level", default="INFO", help="lowest level shown (DEBUG, INFO, WARNING, ERROR)"
    )
    sub.add_parser("zones", help="zones and lines, armed or not, people in each now")
    sub.add_parser("outputs", help="deterrent outputs and their state")
    t = sub.add_parser("test-output", help="pulse one deterrent output and read it back")
    t.add_argument("name", help="output name from [deterrents.NAME]")
    m = sub.add_parser("mute", help="mute the deterrents (0 unmutes)")
    m.add_argument("minutes", type=float, help="minutes")
    return p


def request_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    c = args.command
    if c == "selftest":
        return c, {"outputs": not args.no_outputs}
    if c == "bench":
        return c, {"runs": args.runs}
    if c == "snapshot":
        return c, {"max_width": args.max_width}
    if c == "logs":
        return c, {"lines": args.lines, "level": args.level}
    if c == "test-output":
        return "test_output", {"name": args.name}
    if c == "mute":
        return c, {"minutes": args.minutes}
    return c, {}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    if args.mqtt and (args.site is None or args.unit is None) and not args.json:
        pass  # the transport says what is missing after checking the broker
    cmd, cmd_args = request_args(args)
    serial_key = getattr(args, "serial", None) and (args.console_key or args.key)
    if args.serial and cmd == "selftest" and cmd_args["outputs"] and not serial_key:
        cmd_args["outputs"] = False  # read-only without a key: say so rather than be refused
        print(
            "vigil-diag: outputs are not pulsed without --console-key FILE or --key hub-key.pem",
            file=sys.stderr,
        )
    out = sys.stdout
    progress = render.Progress(sys.stderr, enabled=not args.json)
    try:
        transport = open_transport(args)
    except Unreachable as e:
        return _fail(args, EXIT_UNREACHABLE, e.message, e.hint)
    try:
        result = transport.request(
            cmd, cmd_args, progress=progress.step, on_bytes=progress.bytes, timeout=args.timeout
        )
    except Unreachable as e:
        progress.done()
        return _fail(args, EXIT_UNREACHABLE, e.message, e.hint)
    except CommandFailed as e:
        progress.done()
        return _fail(args, EXIT_FAILED, e.message, e.hint)
    finally:
        transport.close()
    progress.done()
    status = EXIT_OK
    if cmd == "snapshot":
        png = result.pop("png", b"")
        path = Path(args.output)
        try:
            path.write_bytes(png)
        except OSError as e:
            return _fail(args, EXIT_FAILED, f"cannot write {path}: {e}", "")
        result["file"] = str(path)
    if cmd == "selftest" and not result.get("ok", False):
        status = EXIT_FAILED
    if cmd == "test_output" and not result.get("ok", True):
        status = EXIT_FAILED
    if args.json:
        json.dump(result, out, indent=2, default=_json_default)
        out.write("\n")
    else:
        out.write(render.human(cmd, result))
    return status


def _fail(args: argparse.Namespace, code: int, message: str, hint: str) -> int:
    if args.json:
        json.dump({"ok": False, "error": message, "hint": hint}, sys.stdout)
        sys.stdout.write("\n")
    print(f"vigil-diag: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)
    return code


def _json_default(v: Any) -> Any:
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    return repr(v)


def open_transport(args: argparse.Namespace) -> Transport:
    """The serial console when --serial is given, else the hub link over MQTT."""
    if getattr(args, "serial", None):
        console_key = signer = None
        try:
            if args.console_key:
                from firmware.console.auth import load_console_key

                console_key = load_console_key(args.console_key)
            elif args.key:
                from firmware.link.signing import Signer

                signer = Signer.load(args.key)
        except (OSError, ValueError) as e:
            raise Unreachable(
                f"cannot use the key: {e}",
                "--console-key takes the unit's console key file (64 hex digits); "
                "--key the hub's Ed25519 private key (PEM)",
            ) from None
        return SerialTransport(args.serial, args.baud, console_key=console_key, signer=signer)
    return MqttTransport(
        args.mqtt, site=args.site, unit=args.unit, key=args.key, timeout=args.timeout
    )


if __name__ == "__main__":
    sys.exit(main())
