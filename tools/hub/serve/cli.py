"""The `vigil-hub serve` and `vigil-hub user` sub-commands."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tools.hub.serve.config import DEFAULT_DB, DEFAULT_LISTEN, ServeConfig

log = logging.getLogger("vigil-hub")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="the in-store hub service: ingest, database, web console")
    s.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="broker, mqtt:// or mqtts://")
    s.add_argument("--site", default="+", help="site id ('+': every site)")
    s.add_argument("--prefix", default="vigil", help="first topic level")
    s.add_argument(
        "--db", type=Path, default=Path(DEFAULT_DB), help=f"SQLite database (default {DEFAULT_DB})"
    )
    s.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        help=f"HOST:PORT of the console (default {DEFAULT_LISTEN})",
    )
    s.add_argument(
        "--key", type=Path, help="hub command-signing key (vigil-hub keygen); without it no actions"
    )
    s.add_argument("--tls-cert", type=Path, help="HTTPS certificate (PEM) of the console")
    s.add_argument("--tls-key", type=Path, help="the key of --tls-cert (PEM)")
    s.add_argument(
        "--store", type=Path, help="store settings (TOML): alert severity, floor plan, units"
    )
    s.add_argument("--mqtt-ca", help="CA of the broker, for mqtts://")
    s.add_argument("--mqtt-cert", help="the hub's MQTT client certificate (PEM), for mqtts://")
    s.add_argument("--mqtt-key", help="the key of --mqtt-cert (PEM)")
    s.add_argument(
        "--no-validate", action="store_true", help="do not check messages against the CDDL"
    )
    s.add_argument(
        "--homeassistant",
        action="store_true",
        help="bridge the units to Home Assistant (MQTT discovery, JSON topics; [homeassistant] in --store; docs/homeassistant.md)",
    )
    u = sub.add_parser("user", help="console accounts: add, list, remove, passwd")
    us = u.add_subparsers(dest="user_action", required=True, metavar="ACTION")
    for name, help_ in (
        ("add", "add an account"),
        ("passwd", "set a new password"),
        ("remove", "remove an account"),
        ("list", "list the accounts"),
    ):
        p = us.add_parser(name, help=help_)
        if name != "list":
            p.add_argument("name")
        if name == "add":
            p.add_argument("--role", required=True, choices=["guard", "manager", "admin"])
        if name in ("add", "passwd"):
            p.add_argument(
                "--password-file",
                required=True,
                type=Path,
                help="file whose first line is the password (never on the command line)",
            )
        p.add_argument("--db", type=Path, default=Path(DEFAULT_DB), help=f"default {DEFAULT_DB}")
    # fmt: skip


def serve(args: argparse.Namespace) -> int:
    from tools.hub.serve import config
    from tools.hub.serve.db import DBError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    cfg = config.build(
        mqtt=args.mqtt, site=args.site, prefix=args.prefix, db=args.db, listen=args.listen,
        key=args.key, tls_cert=args.tls_cert, tls_key=args.tls_key, store=args.store,
        mqtt_ca=args.mqtt_ca, mqtt_cert=args.mqtt_cert, mqtt_key=args.mqtt_key,
        homeassistant=args.homeassistant or None,
    )  # fmt: skip
    for what, path in (
        ("--key", cfg.key),
        ("--tls-cert", cfg.tls_cert),
        ("--tls-key", cfg.tls_key),
    ):
        if path is not None and not path.is_file():
            raise ValueError(f"{what} {path}: no such file")
    try:
        return run_service(cfg, validate=not args.no_validate)
    except DBError as e:
        raise ValueError(str(e)) from None


def user(args: argparse.Namespace) -> int:
    from tools.hub.serve import auth
    from tools.hub.serve.db import DBError, HubDB

    try:
        db = HubDB(args.db)
    except DBError as e:
        raise ValueError(str(e)) from None
    try:
        if args.user_action == "add":
            auth.add_user(db, args.name, args.role, auth.read_password_file(args.password_file))
            print(f"added {args.name} ({args.role}) to {db.path}")
        elif args.user_action == "passwd":
            auth.set_password(db, args.name, auth.read_password_file(args.password_file))
            print(f"new password for {args.name}; their sessions are logged out")
        elif args.user_action == "remove":
            auth.remove_user(db, args.name)
            print(f"removed {args.name}")
        else:
            for u in auth.list_users(db):
                print(f"{u['name']}\t{u['role']}")
    except auth.AuthError as e:
        raise ValueError(str(e)) from None
    finally:
        db.close()
    return 0


def run_service(cfg: ServeConfig, *, validate: bool = True) -> int:
    """Serve until SIGINT/SIGTERM."""
    import uvicorn

    from tools.hub.serve.api import build_app
    from tools.hub.serve.auth import list_users
    from tools.hub.serve.service import Hub

    hub = Hub(cfg, validate=validate)
    if not list_users(hub.db):
        log.warning(
            "no accounts in %s yet: add one with  vigil-hub user add NAME --role admin "
            "--password-file FILE --db %s", cfg.db, cfg.db,
        )  # fmt: skip
    host, port = cfg.host_port
    scheme = "https" if cfg.tls else "http"
    log.info(
        "console on %s://%s:%d/ (database %s, broker %s)", scheme, host, port, cfg.db, cfg.mqtt
    )
    hub.start()
    try:
        uvicorn.run(
            build_app(hub),
            host=host,
            port=port,
            ssl_certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
            ssl_keyfile=str(cfg.tls_key) if cfg.tls_key else None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    finally:
        hub.stop()
    return 0
