"""Config of the deterrent outputs wired to the unit's GPIO header."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from firmware.config.base import NonNegSeconds, PosSeconds, Section


class DeterrentConfig(Section):
    kind: Literal["light", "strobe", "relay", "buzzer"] = Field(
        "light", description="What is wired to the output"
    )
    pin: int | str = Field(
        ..., description="BCM GPIO number (17) or gpiozero pin name ('GPIO17', 'BOARD11')"
    )
    active_high: bool = Field(
        True, description="False when the output is on at a low level (many relay boards)"
    )
    on_s: PosSeconds = Field(5.0, description="How long the output stays on per activation")
    cooldown_s: NonNegSeconds = Field(
        60.0, description="Minimum time after switching off before it may switch on again"
    )

    @field_validator("pin")
    @classmethod
    def _pin_exists(cls, pin: int | str) -> int | str:
        bcm = parse_pin(pin)
        if bcm is None:
            raise ValueError(
                f"pin {pin!r} does not exist on the 40-pin header (use a BCM number 2-27, 'GPIOn' or 'BOARDn')"
            )
        return pin


# Physical header pin -> BCM GPIO for the 40-pin header (Pi 2 and later).
BOARD_TO_BCM = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10,
    21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19,
    36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip


def parse_pin(pin: int | str) -> int | None:
    """BCM number for a pin given as int, 'GPIOn', 'BCMn' or 'BOARDn'; None if no such pin."""
    if isinstance(pin, bool):
        return None
    if isinstance(pin, int):
        return pin if 2 <= pin <= 27 else None
    m = re.fullmatch(r"(GPIO|BCM|BOARD)(\d{1,2})", pin.strip().upper())
    if not m:
        return None
    n = int(m.group(2))
    if m.group(1) == "BOARD":
        return BOARD_TO_BCM.get(n)
    return n if 2 <= n <= 27 else None
