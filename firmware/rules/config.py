"""Config of the behaviour rules: one section per rule under [rules]."""

from __future__ import annotations

from pydantic import Field

from firmware.config.base import PosSeconds, Section


class LoiteringRule(Section):
    enabled: bool = True
    zones: list[str] | None = Field(
        None, description="Zone names watched; default: every high_value zone"
    )
    threshold_s: PosSeconds = Field(30.0, description="Seconds in a zone before the rule fires")
    deterrent: str | None = Field(
        None, description="Deterrent output to switch when the rule fires"
    )


class RulesConfig(Section):
    loitering: LoiteringRule = Field(default_factory=LoiteringRule)
