"""`vigil-hub`: watch a site's units, send them signed commands, make hub keys and ACL entries.

vigil-hub keygen hub-key.pem
vigil-hub watch --mqtt mqtt://127.0.0.1:1883 --site demo-site
vigil-hub cmd --mqtt ... --site demo-site --unit unit-01 --key hub-key.pem arm zone=till
vigil-hub homeassistant --mqtt ... --site demo-site --key hub-key.pem [--config hub.toml]
vigil-hub acl demo-site unit-01
vigil-hub serve --mqtt mqtt://127.0.0.1:1883 --site demo-site --db hub.sqlite --listen 127.0.0.1:8080
vigil-hub user add alice --role manager --password-file pw.txt --db hub.sqlite
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from tools.hub.client import HubClient, Received

SEVERITY = {0: "info", 1: "notice", 2: "WARN", 3: "ALERT"}


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="broker, mqtt:// or mqtts://")
    p.add_argument("--site", default="+", help="site id ('+' for every site)")
    p.add_argument("--prefix", default="vigil", help="first topic level")
    p.add_argument("--ca", help="CA certificate (PEM) of the broker, for mqtts://")
    p.add_argument("--cert", help="the hub's client certificate (PEM), for mqtts://")
    p.add_argument("--tls-key", help="the key of --cert (PEM)")
    p.add_argument(
        "--no-validate", action="store_true", help="do not check messages against the CDDL"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil-hub", description="Hub-side reference client of the Vigil MQTT contract"
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = sub.add_parser("keygen", help="make the hub's Ed25519 command-signing key pair")
    k.add_argument("private", type=Path, help="private key file to create (PEM, mode 0600)")
    k.add_argument("--public", type=Path, help="public key file (default <private>.pub.pem)")
    w = sub.add_parser("watch", help="print every message of a site, checked against the CDDL")
    _connection_args(w)
    w.add_argument("--json", action="store_true", help="one JSON object per message")
    w.add_argument("--count", type=int, default=0, help="exit after this many messages")
    c = sub.add_parser("cmd", help="send one signed command and print the reply")
    _connection_args(c)
    c.add_argument("--unit", required=True, help="unit id")
    c.add_argument("--key", required=True, type=Path, help="hub private key (from keygen)")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply")
    c.add_argument("--file", type=Path, help="config/set: the site config (TOML) to send")
    c.add_argument("name", help="command: arm, disarm, config/set, mute, diagnostics, ...")
    c.add_argument(
        "args", nargs="*", help="arguments as name=value (value parsed as JSON if it can be)"
    )
    h = sub.add_parser(
        "homeassistant", help="bridge the site's units to Home Assistant (MQTT discovery, JSON)"
    )
    _connection_args(h)
    h.add_argument("--key", type=Path, help="hub private key: signs Home Assistant's commands")
    h.add_argument("--config", type=Path, help="hub config (TOML) with a [homeassistant] table")
    from tools.hub.serve.cli import add_parsers

    add_parsers(sub)
    a = sub.add_parser("acl", help="print Mosquitto ACL lines for one unit")
    a.add_argument("site")
    a.add_argument("unit")
    a.add_argument("--prefix", default="vigil")
    from tools.hub.serve import case_cli

    case_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.action == "case":
            from tools.hub.serve import case_cli

            return case_cli.run(args)
        return {
            "keygen": _keygen, "watch": _watch, "cmd": _cmd, "acl": _acl, "serve": _serve,
            "user": _user, "homeassistant": _homeassistant,
        }[args.action](args)  # fmt: skip
    except (OSError, ValueError, TimeoutError, RuntimeError) as e:
        print(f"vigil-hub: {e}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    from tools.hub.serve.cli import serve

    return serve(args)


def _user(args: argparse.Namespace) -> int:
    from tools.hub.serve.cli import user

    return user(args)


def _keygen(args: argparse.Namespace) -> int:
    from firmware.link.signing import Signer

    public = args.public or args.private.with_name(args.private.stem + ".pub.pem")
    if args.private.exists():
        raise ValueError(f"{args.private} exists; not overwriting a key")
    Signer.generate(args.private, public)
    print(f"private key: {args.private} (keep it on the hub)")
    print(f"public key:  {public} (set [link] hub_public_key on every unit)")
    return 0


def _client(args: argparse.Namespace, **kw: Any) -> HubClient:
    return HubClient(
        args.mqtt,
        site=args.site,
        prefix=args.prefix,
        ca=args.ca,
        cert=args.cert,
        key=args.tls_key,
        validate=not args.no_validate,
        **kw,
    )


def describe(r: Received) -> str:
    """One readable line for a message."""
    m = r.message if isinstance(r.message, dict) else {}
    who = f"{r.site}/{r.unit}"
    flag = "  !! " + "; ".join(r.problems) if r.problems else ""
    if r.kind == "events":
        when = _clock(m.get("time"))
        sev = SEVERITY.get(m.get("severity"), m.get("severity"))
        zone = f" zone {m['zone']}" if m.get("zone") else ""
        tracks = ",".join(str(t) for t in m.get("track_ids", []))
        explain = " ".join(f"{k}={v}" for k, v in (m.get("explain") or {}).items())
        return (
            f"{when} {who} EVENT {sev} {m.get('type')} {m.get('phase')}{zone} tracks [{tracks}]"
            f" {explain} (session {m.get('session')} seq {m.get('seq')}){flag}"
        )
    if r.kind == "status":
        reasons = f" ({', '.join(m.get('reasons', []))})" if m.get("reasons") else ""
        retained = " [retained]" if r.retained else ""
        return f"{_clock(m.get('time'))} {who} STATUS {m.get('state')}{reasons}{retained}{flag}"
    if r.kind == "birth":
        models = ", ".join(x.get("name", "?") for x in m.get("models", []))
        return (
            f"{_clock(m.get('time'))} {who} BIRTH firmware {m.get('firmware')} models [{models}]"
            f" config {str(m.get('config_hash'))[:12]} session {m.get('session')}{flag}"
        )
    if r.kind == "metrics":
        ob = m.get("outbox", {})
        return (
            f"{_clock(m.get('time'))} {who} METRICS fps {m.get('fps', '-')} outbox "
            f"{ob.get('depth')} dropped {ob.get('dropped')} temp {m.get('cpu_temp_c')}{flag}"
        )
    if r.kind == "reply":
        outcome = "ok" if m.get("ok") else f"ERROR {m.get('error', {}).get('code')}"
        detail = m.get("result") if m.get("ok") else m.get("error", {}).get("message")
        return f"{_clock(m.get('time'))} {who} REPLY {m.get('cmd')} [{m.get('id')}] {outcome}: {detail}{flag}"
    if r.kind == "config/state":
        return f"{_clock(m.get('time'))} {who} CONFIG {str(m.get('config_hash'))[:12]}{flag}"
    return f"{who} {r.kind} {len(r.payload)} bytes{flag}"


def _clock(t: Any) -> str:
    if not isinstance(t, int | float):
        return "--:--:--"
    if t < 1e9:  # a clip's own clock
        return f"t={t:8.2f}"
    return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S")


class StreamCheck:
    """Spots duplicates (by msg_id) and gaps (per unit and session, by seq) as events arrive."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.last: dict[tuple[str, str, int], int] = {}

    def note(self, r: Received) -> str | None:
        m = r.message
        if r.kind != "events" or not isinstance(m, dict):
            return None
        if m.get("msg_id") in self.ids:
            return "duplicate (already received; ignore)"
        self.ids.add(m.get("msg_id"))
        key = (r.site, r.unit, m.get("session"))
        seq = m.get("seq")
        if not isinstance(seq, int):
            return None
        last = self.last.get(key)
        self.last[key] = seq if last is None else max(last, seq)
        if last is not None and seq > last + 1:
            return f"GAP: {seq - last - 1} event(s) missing before seq {seq} (see metrics outbox.dropped)"
        return None


def _watch(args: argparse.Namespace) -> int:
    done = threading.Event()
    seen = [0]
    check = StreamCheck()

    def show(r: Received) -> None:
        note = check.note(r)
        if args.json:
            print(
                json.dumps(
                    {"topic": r.topic, "problems": r.problems, "message": r.message}, default=repr
                ),
                flush=True,
            )
        else:
            print(describe(r) + (f"  <- {note}" if note else ""), flush=True)
        seen[0] += 1
        if args.count and seen[0] >= args.count:
            done.set()

    signal.signal(signal.SIGINT, lambda *_: done.set())
    with _client(args, on_message=show):
        done.wait()
    return 0


def _parse_args(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"argument {pair!r} is not name=value")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def _cmd(args: argparse.Namespace) -> int:
    from firmware.link.signing import Signer

    if args.site == "+":
        raise ValueError("--site is required for cmd")
    cmd_args = _parse_args(args.args)
    if args.name == "config/set":
        if args.file is None:
            raise ValueError("config/set needs --file SITE.toml")
        cmd_args["text"] = args.file.read_text(encoding="utf-8")
    signer = Signer.load(args.key)
    with _client(args, signer=signer) as hub:
        reply = hub.command(args.unit, args.name, cmd_args, timeout=args.timeout)
    print(json.dumps(reply, indent=2, default=repr))
    return 0 if reply.get("ok") else 1


def _homeassistant(args: argparse.Namespace) -> int:
    import logging

    from firmware.link.signing import Signer
    from tools.hub.homeassistant import HomeAssistantBridge, load_hub_config

    cfg = load_hub_config(args.config)
    signer = Signer.load(args.key) if args.key else None
    if signer is None:
        print(
            "vigil-hub: no --key: Home Assistant's switches and buttons are refused",
            file=sys.stderr,
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    bridge = HomeAssistantBridge(
        args.mqtt,
        args.site,
        args.prefix,
        signer=signer,
        cfg=cfg,
        ca=args.ca,
        cert=args.cert,
        key=args.tls_key,
        validate=not args.no_validate,
    )
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    bridge.start()
    done.wait()
    bridge.stop()
    return 0


def acl_lines(prefix: str, site: str, unit: str) -> list[str]:
    """The Mosquitto ACL block of one unit (user name = certificate CN ``<site>.<unit>``)."""
    base = f"{prefix}/{site}/{unit}"
    lines = [f"# unit {site}/{unit}", f"user {site}.{unit}"]
    for suffix in ("status", "birth", "events", "metrics", "reply", "config/state"):
        lines.append(f"topic write {base}/{suffix}")
    lines += [f"topic read {base}/cmd/#", f"topic read {base}/config/set"]
    return lines


def hub_acl_lines(prefix: str = "vigil", user: str = "hub") -> list[str]:
    return [
        f"user {user}",
        f"topic read {prefix}/#",
        f"topic write {prefix}/+/+/cmd/#",
        f"topic write {prefix}/+/+/config/set",
    ]


def _acl(args: argparse.Namespace) -> int:
    print("\n".join(acl_lines(args.prefix, args.site, args.unit)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
