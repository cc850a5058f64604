"""Diagnostics: self-test checks and the command handlers behind `vigil-diag`.

The frame loop feeds a ``UnitProbe``; ``Diagnostics(probe)`` answers commands from any
transport (serial console, unix socket, hub link); ``run_selftest(probe)`` gives the checks
as ``{name, ok, detail, hint}``.
"""

from firmware.diag.checks import run_selftest
from firmware.diag.handlers import COMMANDS, DiagError, Diagnostics
from firmware.diag.probe import UnitProbe

__all__ = ["COMMANDS", "DiagError", "Diagnostics", "UnitProbe", "run_selftest"]
