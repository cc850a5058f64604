"""`vigil-hub case list|export|verify`: the cases of a hub database as evidence packs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("case", help="incident cases: list, export an evidence pack, verify one")
    cs = c.add_subparsers(dest="case_action", required=True, metavar="CASE_ACTION")
    ls = cs.add_parser("list", help="one JSON object per case (newest first), with its id")
    ls.add_argument("--db", required=True, type=Path, help="the hub's database")
    ex = cs.add_parser("export", help="write a signed evidence pack (zip) of one case")
    ex.add_argument("id", type=int, help="case id (from `case list`)")
    ex.add_argument("--db", required=True, type=Path, help="the hub's database")
    ex.add_argument("--key", required=True, type=Path, help="the hub's Ed25519 private key (PEM)")
    ex.add_argument("--out", required=True, type=Path, help="pack to write, PACK.zip")
    ve = cs.add_parser("verify", help="check a pack's signature and every hash")
    ve.add_argument("pack", type=Path, help="PACK.zip")
    ve.add_argument("--pub", required=True, type=Path, help="the hub's public key (PEM)")


def run(args: argparse.Namespace) -> int:
    from tools.hub.serve import cases, evidence

    if args.case_action == "verify":
        try:
            m = evidence.verify(args.pack, args.pub)
        except evidence.PackError as e:
            print(f"vigil-hub: verify failed: {e}", file=sys.stderr)
            return 1
        c = m["case"]
        print(
            f"{args.pack}: OK: case {c['id']} ({c['title']}), {len(m['events'])} events, "
            f"{len(m['store_inputs'])} store inputs, {len(m['clips'])} clip references, signed by this hub"
        )
        return 0
    db = _open(args.db)
    try:
        con = db.read()
        if args.case_action == "list":
            for c in cases.list_cases(con):
                sys.stdout.write(json.dumps(c, separators=(",", ":")) + "\n")
            return 0
        try:
            m = evidence.export(con, args.id, args.key, args.out)
        except LookupError as e:
            raise ValueError(str(e).strip("'\"")) from None
        print(f"{args.out}: case {args.id}, {len(m['events'])} events, signed")
        return 0
    finally:
        db.close()


def _open(path: Path):
    from tools.hub.serve.db import HubDB

    if not path.is_file():
        raise ValueError(f"{path}: no such database (the hub's --db)")
    return HubDB(path)
