"""Cross-section checks of the whole site config: what no single section can check alone.

Each returns problems as 'key: message' (empty when fine). The site config's validator runs
them all, so `vigil config check`, `vigil run` and a hub `config/set` refuse the same things
and name the same key.
"""

from __future__ import annotations

from typing import Any

from firmware.deter.boards import BoardError, load_board
from firmware.deter.config import DeterrenceConfig, Pin, parse_pin

# ``cfg`` below is the whole site config (firmware.config.schema.VigilConfig, which calls
# these from its validator; typed Any here so this module does not import the schema back).


def check_all(cfg: Any) -> list[str]:
    """Every cross-section problem of the site config ``cfg``."""
    return check_timezone(cfg) + check_privacy_scores(cfg) + check_outputs(cfg)


def check_timezone(cfg: Any) -> list[str]:
    """The site's time zone must be a real IANA name: schedules and quiet hours use it."""
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(cfg.site.timezone)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return [
            f"site.timezone: unknown time zone {cfg.site.timezone!r} (use an IANA name such as Europe/Paris)"
        ]
    return []


def check_privacy_scores(cfg: Any) -> list[str]:
    """The background prior must never lower a candidate the anonymiser would mask."""
    protect, mask = cfg.detector.background_protect_score, cfg.privacy.min_score
    if cfg.detector.background and protect > mask:
        return [
            f"detector.background_protect_score: {protect:g} is above privacy.min_score {mask:g}; "
            "the background prior could then hide people the anonymiser must mask"
        ]
    return []


def check_outputs(cfg: Any) -> list[str]:
    """Outputs, pins and escalation policies against the board profile and the rules."""
    problems: list[str] = []
    board = None
    if cfg.site.board:
        try:
            board = load_board(cfg.site.board)
        except BoardError as e:
            problems.append(f"site.board: {e}")
    used: dict[int, str] = {}

    def claim(key: str, pin: Pin | None) -> None:
        bcm = parse_pin(pin)
        if bcm is None:
            return
        if board is not None:
            why = board.reserved_reason(bcm)
            if why:
                problems.append(f"{key}: GPIO{bcm} is reserved on {board.title}: {why}")
                return
        if bcm in used:
            problems.append(f"{key}: GPIO{bcm} is already used by {used[bcm]}")
            return
        used[bcm] = key

    for name, d in cfg.deterrents.items():
        claim(f"deterrents.{name}.pin", d.pin)
        claim(f"deterrents.{name}.feedback_pin", d.feedback_pin)
    for name, inp in getattr(cfg, "inputs", {}).items():
        if parse_pin(inp.pin) is None:
            problems.append(
                f"inputs.{name}.pin: {inp.pin!r} is not a GPIO pin (17, 'GPIO17', 'BOARD11')"
            )
        claim(f"inputs.{name}.pin", inp.pin)
    deterrence: DeterrenceConfig = cfg.deterrence
    claim("deterrence.mute_button", deterrence.mute_button)
    rule_names = set(type(cfg.rules).model_fields)
    for rule, policy in deterrence.escalation.items():
        if rule not in rule_names:
            problems.append(
                f"deterrence.escalation.{rule}: no rule named {rule!r} (rules: {', '.join(sorted(rule_names))})"
            )
        for i, stage in enumerate(policy.stages):
            for out in stage.outputs:
                if out not in cfg.deterrents:
                    problems.append(
                        f"deterrence.escalation.{rule}.stages[{i}].outputs: unknown deterrent {out!r}"
                    )
    return problems
