"""The bridge's config: the ``[homeassistant]`` table of the hub's config file (HUB.toml).

Every key has a default, so ``vigil-hub homeassistant`` runs without a file; an unknown key,
a bad topic prefix or a command Home Assistant may not trigger is refused with its key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The hub commands a Home Assistant entity can stand for (switch: arm/disarm, buttons:
# deterrent_test and mute). config/set, diagnostics, rebirth, retention_purge and legal_hold
# stay with the hub's own tools.
BRIDGEABLE = ("arm", "disarm", "deterrent_test", "mute")
TopicLevel = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class HomeAssistantConfig(BaseModel):
    """``[homeassistant]`` in HUB.toml."""

    model_config = ConfigDict(extra="forbid")

    discovery_prefix: TopicLevel = Field(
        "homeassistant",
        description="Home Assistant's discovery prefix (its MQTT option of that name); its "
        "birth message is read from <discovery_prefix>/status",
    )
    json_prefix: TopicLevel = Field(
        "vigil-json",
        description="First level of the JSON state and command topics: "
        "<json_prefix>/<site>/<unit>/...",
    )
    discovery: Literal["device", "entity"] = Field(
        "device",
        description="device: one homeassistant/device/<id>/config per unit (HA 2024.12 or "
        "later); entity: one homeassistant/<platform>/<id>/<entity>/config per entity",
    )
    allowed_commands: list[Literal["arm", "disarm", "deterrent_test", "mute"]] = Field(
        default_factory=lambda: list(BRIDGEABLE),
        description="Hub commands Home Assistant may trigger; entities of the others are not "
        "offered and their command topics are refused",
    )
    mute_minutes: Annotated[float, Field(gt=0, le=1440)] = Field(
        15.0, description="Minutes the 'Mute deterrents' button silences the deterrents"
    )
    deterrent_test_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        2.0, description="Seconds each deterrent-test button switches its output on"
    )
    command_timeout_s: Annotated[float, Field(gt=0, le=120)] = Field(
        10.0, description="Seconds to wait for the unit's reply before reporting a timeout"
    )
    instant_hold_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        30.0,
        description="Seconds a rule's binary sensor stays on after a one-off (instant) event "
        "such as a grab-and-run",
    )
    retain_discovery: bool = Field(
        True,
        description="Publish discovery retained (entities come back after a Home Assistant "
        "restart even before the re-announce)",
    )

    @property
    def ha_status_topic(self) -> str:
        return f"{self.discovery_prefix}/status"


def load_hub_config(path: str | Path | None) -> HomeAssistantConfig:
    """The ``[homeassistant]`` table of HUB.toml (defaults without a file or a table); a
    ValueError naming the file and key of every problem."""
    if path is None:
        return HomeAssistantConfig()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read --config {p}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: not TOML: {e}") from None
    table = data.get("homeassistant", {})
    if not isinstance(table, dict):
        raise ValueError(f"{p}: homeassistant must be a table ([homeassistant])")
    try:
        return HomeAssistantConfig.model_validate(table)
    except ValidationError as e:
        lines = [
            f"{p}: homeassistant.{'.'.join(map(str, err['loc']))}: {err['msg']}"
            for err in e.errors()
        ]
        raise ValueError("\n".join(lines)) from None
