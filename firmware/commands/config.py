"""`vigil config check FILE` and `vigil config schema`."""

from __future__ import annotations

import argparse
import json
import sys

from firmware.config import ConfigError, load
from firmware.config.schema import VigilConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    c = sub.add_parser("check", help="validate a site config; prints every problem with its key")
    c.add_argument("file", help="site config (TOML)")
    sub.add_parser("schema", help="print the config's JSON schema (every key, default, bound)")


def run(args: argparse.Namespace) -> int:
    if args.config_command == "schema":
        print(json.dumps(VigilConfig.model_json_schema(), indent=2))
        return 0
    try:
        loaded = load(args.file)
    except ConfigError as e:
        print(f"{e.source}: {len(e.problems)} problem(s)", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    cfg = loaded.config
    print(
        f"{args.file}: OK (site {cfg.site.site_id}, unit {cfg.site.unit_id}, "
        f"{len(cfg.zones)} zone(s), {len(cfg.lines)} line(s), {len(cfg.deterrents)} deterrent(s))"
    )
    if cfg.camera.floor is not None:
        from firmware.floor import point_report

        print("\n".join(point_report(cfg.camera.floor)))
    return 0
