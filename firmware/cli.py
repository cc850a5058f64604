"""`vigil`: the unit's command line. Subcommands live in firmware/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from firmware import __version__

# name -> (module in firmware.commands, one-line help)
SUBCOMMANDS = {
    "run": ("run", "run the frame loop on the camera or a recorded clip"),
    "config": ("config", "check a site config or print its documented schema"),
    "incident": ("incident", "list, export (decrypt) incidents stored on this unit"),
    "console": ("console", "serve the diagnostics console on a serial port"),
}


def add_subcommands(sub, package: str, table: dict[str, tuple[str, str]]) -> dict:
    """One sub-parser per ``table`` entry (name -> (module in ``package``, help)); each module
    brings ``add_arguments(parser)`` and ``run(args) -> int``. Returns name -> module."""
    modules = {}
    for name, (module, help_text) in table.items():
        mod = importlib.import_module(f"{package}.{module}")
        mod.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
        modules[name] = mod
    return modules


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="vigil", description="Vigil in-store camera firmware")
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, add_subcommands(sub, "firmware.commands", SUBCOMMANDS)


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if (
        not argv
        or argv[0].startswith("-")
        and argv[0] not in ("-h", "--help", "--version", "-v", "--verbose")
    ):
        argv = ["run", *argv]  # `vigil` alone runs the demo
    if argv in (["-v"], ["--verbose"]):
        argv = [*argv, "run"]
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        args = parser.parse_args(["run"])
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
