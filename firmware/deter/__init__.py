"""Deterrents: GPIO lights/strobes/relays/buzzers, voice messages and serial sirens, escalated per rule.

``DeterrentController(cfg).on_event(event, now)`` / ``.tick(now)`` from the frame loop; every
actuation comes back as a ``deterrent`` event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware.deter.controller import DeterrentController

__all__ = ["DeterrentController"]


def __getattr__(name: str) -> Any:
    if name == "DeterrentController":
        from firmware.deter.controller import DeterrentController

        return DeterrentController
    raise AttributeError(name)
