"""INPUTS.jsonl for `vigil-eval behave --inputs`: store-system inputs replayed beside a tracks
file, one JSON object a line, ``t`` in seconds from frame 1:

    {"t": 12.0, "input": "gate", "state": "active"}
    {"t": 30.5, "input": "till", "line": "REFUND till=2 amount=12.50 cashier=1042"}
    {"t": 31.0, "input": "till", "transaction": "refund", "till": "2", "amount": 12.5}

Contact inputs are named as under ``[inputs.<name>]`` in the site config; till lines go through
the configured ``[till]`` parser (cashier ids pseudonymised as on the unit).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from firmware.inputs.records import TRANSACTION_KINDS, ContactChange, InputRecord, TillTransaction
from firmware.inputs.till import Pseudonymiser, TillParser


class InputsFileError(ValueError):
    """An inputs file that cannot be used; the message names the file, line and problem."""


def read_inputs(path: Path, cfg: Any, base_dir: Path | None = None) -> list[InputRecord]:
    """Records sorted by time. Till records need ``[till]`` in ``cfg``; the pseudonym secret is
    the config's ``secret_file`` where given, else a random one for this run."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputsFileError(f"{path}: cannot read ({e})") from None
    parser: TillParser | None = None
    if cfg.till is not None:
        if cfg.till.secret_file:
            p = Path(cfg.till.secret_file).expanduser()
            p = p if p.is_absolute() or base_dir is None else base_dir / p
            try:
                pseud = Pseudonymiser.from_file(p)
            except (OSError, ValueError) as e:
                raise InputsFileError(f"till.secret_file: {e}") from None
        else:
            pseud = Pseudonymiser(secrets.token_bytes(32))
        parser = TillParser.for_config(cfg.till, pseud)
    out: list[InputRecord] = []
    for ln, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        where = f"{path}:{ln}"
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputsFileError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise InputsFileError(f"{where}: expected a JSON object")
        t, name = rec.get("t"), rec.get("input")
        if not isinstance(t, int | float) or isinstance(t, bool) or t < 0:
            raise InputsFileError(f"{where}: 't' must be seconds from frame 1 (a number >= 0)")
        if not isinstance(name, str):
            raise InputsFileError(f"{where}: 'input' must name an input")
        out.append(_record(rec, float(t), name, cfg, parser, where))
    out = [r for r in out if r is not None]
    out.sort(key=lambda r: r.t)
    return out


def _record(rec: dict, t: float, name: str, cfg: Any, parser: TillParser | None, where: str):
    if name in cfg.inputs:
        state = rec.get("state")
        if state not in ("active", "inactive"):
            raise InputsFileError(
                f"{where}: input {name!r}: 'state' must be 'active' or 'inactive'"
            )
        inp = cfg.inputs[name]
        return ContactChange(t, name, inp.kind, inp.zone, state == "active")
    if name != "till":
        known = ", ".join([*cfg.inputs, *(["till"] if cfg.till else [])]) or "none configured"
        raise InputsFileError(f"{where}: unknown input {name!r} (inputs: {known})")
    if parser is None:
        raise InputsFileError(f"{where}: a till record needs [till] in the site config")
    if "line" in rec:
        if not isinstance(rec["line"], str):
            raise InputsFileError(f"{where}: 'line' must be the raw journal text")
        return parser.parse(rec["line"], t)
    kind = rec.get("transaction")
    if kind not in TRANSACTION_KINDS:
        raise InputsFileError(
            f"{where}: a till record needs 'line' or 'transaction' (one of {', '.join(TRANSACTION_KINDS)})"
        )
    amount = rec.get("amount")
    if amount is not None and (not isinstance(amount, int | float) or isinstance(amount, bool)):
        raise InputsFileError(f"{where}: 'amount' must be a number")
    cashier = rec.get("cashier")
    return TillTransaction(
        t,
        "till",
        kind,
        till=None if rec.get("till") is None else str(rec["till"]),
        amount=None if amount is None else float(amount),
        cashier=parser.pseudonymise(str(cashier)) if cashier is not None else None,
    )
