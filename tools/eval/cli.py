"""`vigil-eval`: run the unit's own stages offline on evaluation inputs.

Each subcommand lives in its own module, ``tools/eval/run_<name>.py``, exposing
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches
(``firmware.cli.add_subcommands``, as `vigil` does).
"""

from __future__ import annotations

import argparse
import sys

from firmware.cli import add_subcommands

SUBCOMMANDS = {
    "detect": (
        "run_detect",
        "COCO results JSON from the unit's default detector on a folder of images",
    ),
    "track": (
        "run_track",
        "MOTChallenge results from the unit's tracker on MOTChallenge detections",
    ),
    "behave": (
        "run_behave",
        "behaviour events (JSON lines) from the unit's rule engine on a tracks file",
    ),
    "mtmc": (
        "run_mtmc",
        "store-wide ids from the hub's fusion on per-view tracks (MOT files per view)",
    ),
    "anonymise": (
        "run_anonymise",
        "anonymised PNGs, as the unit would store them, for a folder of images",
    ),
    "forecast": (
        "run_forecast",
        "expected incidents per zone per hour, with an 80% interval, from an incident history",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil-eval", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = add_subcommands(sub, "tools.eval", SUBCOMMANDS)
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except (ValueError, OSError) as e:
        print(f"vigil-eval {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
