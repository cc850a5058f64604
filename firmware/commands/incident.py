"""`vigil incident list|export|reveal|hold|release|delete|purge|audit|keygen`: incidents.

Export decrypts an incident for the person entitled to it, who must hold the key file;
reveal opens its escrowed originals for the data controller, who holds the escrow private
key. Every export, reveal, hold, release and deletion is written to the unit's audit log.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path

from firmware.config import ConfigError, default, load
from firmware.recording import (
    DecryptionError,
    IncidentError,
    IncidentStore,
    RecordingKeyError,
    generate_key_file,
    load_key,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="site config (TOML); gives the data folder and key file")
    p.add_argument("--data-dir", help="the unit's data folder (overrides the config)")
    sub = p.add_subparsers(dest="incident_command", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="list stored incidents, oldest first")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ex = sub.add_parser("export", help="decrypt an incident's clip (and record) to a file")
    ex.add_argument("incident", help="incident id (from `vigil incident list`)")
    ex.add_argument("--out", required=True, help="clip file to write; the record goes beside it")
    ex.add_argument("--key", help="key file (default: recording.key_file from the config)")
    _who(ex, reason_required=True)
    rv = sub.add_parser("reveal", help="open an incident's escrowed originals (controller only)")
    rv.add_argument("incident", help="incident id")
    rv.add_argument("--escrow-key", required=True, help="the escrow private key (PEM)")
    rv.add_argument("--out", required=True, help="video file to write (.mp4, or .avi for MJPG)")
    _who(rv, reason_required=True)
    ho = sub.add_parser("hold", help="put an incident on legal hold (retention skips it)")
    ho.add_argument("incident")
    _who(ho, reason_required=True)
    re_ = sub.add_parser("release", help="release an incident's legal hold")
    re_.add_argument("incident")
    _who(re_, reason_required=False)
    de = sub.add_parser("delete", help="delete one incident (refused while on hold)")
    de.add_argument("incident")
    _who(de, reason_required=True)
    pu = sub.add_parser("purge", help="apply retention now (age and quota; held incidents kept)")
    pu.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    au = sub.add_parser("audit", help="print the audit log and check its hash chain")
    au.add_argument("--verify", action="store_true", help="only check; exit 1 if broken")
    kg = sub.add_parser("keygen", help="create a new recording key file (mode 600)")
    kg.add_argument("--out", required=True, help="key file to create (never overwritten)")
    kg.add_argument(
        "--escrow",
        action="store_true",
        help="an escrow key pair instead: --out gets the private key (PEM, mode 600, for the "
        "data controller), <stem>.pub.pem the public key (for the unit's config)",
    )


def _who(p: argparse.ArgumentParser, reason_required: bool) -> None:
    p.add_argument("--by", default=None, help="who is acting (default: the login name)")
    p.add_argument("--reason", required=reason_required, default="", help="why (for the audit log)")


def _fail(msg: str, code: int = 1) -> int:
    print(f"vigil incident: error: {msg}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    if args.incident_command == "keygen" and args.escrow:
        from firmware.recording.escrow import generate_escrow_pair

        try:
            priv, pub = generate_escrow_pair(args.out)
        except (RecordingKeyError, OSError) as e:
            return _fail(str(e))
        print(f"wrote {priv} (private: for the data controller, never on a unit) and {pub} "
              "(public: [recording.escrow].public_key)")  # fmt: skip
        return 0
    if args.incident_command == "keygen":
        try:
            generate_key_file(args.out)
        except (RecordingKeyError, OSError) as e:
            return _fail(str(e))
        print(f"wrote {args.out} (keep it off the unit's data folder; back it up securely)")
        return 0
    try:
        loaded = load(args.config) if args.config else default()
    except ConfigError as e:
        return _fail(f"{e}; " + "; ".join(e.problems[1:]) if len(e.problems) > 1 else str(e), 2)
    cfg = loaded.config
    data_dir = Path(args.data_dir) if args.data_dir else loaded.resolve(cfg.storage.data_dir)
    store = IncidentStore(data_dir, cfg.recording.max_age_days, cfg.recording.quota_mb)
    actor = getattr(args, "by", None) or _login()
    try:
        if args.incident_command == "list":
            return _list(store, args.json)
        if args.incident_command == "export":
            key_path = Path(args.key) if args.key else loaded.resolve(cfg.recording.key_file)
            key = load_key(key_path)
            paths = store.export(args.incident, key, Path(args.out), actor, args.reason)
            print(f"exported incident {args.incident}: " + ", ".join(str(p) for p in paths))
            return 0
        if args.incident_command == "reveal":
            from firmware.recording.escrow import EscrowStore, load_private_key

            escrow = EscrowStore(data_dir, cfg.recording.escrow.retention_h)
            priv = load_private_key(args.escrow_key)
            out = escrow.reveal(args.incident, priv, Path(args.out), actor, args.reason)
            print(f"revealed incident {args.incident}'s original frames: {out} (audited)")
            return 0
        if args.incident_command in ("hold", "release"):
            store.set_hold(args.incident, args.incident_command == "hold", actor, args.reason)
            print(
                f"incident {args.incident}: {'on legal hold' if args.incident_command == 'hold' else 'hold released'}"
            )
            return 0
        if args.incident_command == "delete":
            store.delete(args.incident, actor, args.reason)
            print(f"incident {args.incident}: deleted")
            return 0
        if args.incident_command == "purge":
            gone = store.enforce_retention(dry_run=args.dry_run)
            if not args.dry_run:
                from firmware.recording.escrow import EscrowStore

                escrow = EscrowStore(data_dir, cfg.recording.escrow.retention_h)
                gone += [f"{i} (originals)" for i in escrow.enforce_retention(actor=actor)]
            verb = "would delete" if args.dry_run else "deleted"
            print(f"{verb} {len(gone)} incident(s)" + (": " + ", ".join(gone) if gone else ""))
            return 0
        if args.incident_command == "audit":
            return _audit(store, args.verify)
    except (IncidentError, DecryptionError, RecordingKeyError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename or ''}: {e.strerror or e}")
    return _fail(f"unknown action {args.incident_command}", 2)


def _list(store: IncidentStore, as_json: bool) -> int:
    incidents = store.list()
    if as_json:
        for i in incidents:
            print(json.dumps(i.meta | {"bytes": i.size}, sort_keys=True))
        return 0
    if not incidents:
        print(f"no incidents in {store.root}")
        return 0
    print(f"{'id':<26} {'created (UTC)':<20} {'dur s':>6} {'MB':>7} {'severity':<8} hold  events")
    for i in incidents:
        m = i.meta
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(i.created))
        print(
            f"{i.id:<26} {created:<20} {m.get('duration_s', 0):>6.1f} {i.size / 1e6:>7.2f} "
            f"{m.get('max_severity') or '-':<8} {'yes ' if i.held else 'no  '}  {','.join(m.get('event_types', []))}"
        )
    return 0


def _audit(store: IncidentStore, verify_only: bool) -> int:
    if not verify_only:
        for e in store.audit.entries():
            print(json.dumps(e, sort_keys=True))
    problems = store.verify_audit()
    for p in problems:
        print(f"audit log {store.audit.path}: {p}", file=sys.stderr)
    if verify_only and not problems:
        print(f"audit log {store.audit.path}: intact ({len(store.audit.entries())} entries)")
    return 1 if problems else 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
