"""Behaviour rules: zones and lines, small state machines over tracks, explained events.

``RuleEngine(cfg, frame_size=(w, h), fps=25.0).update(tracks, timestamp, frame_index)``
returns the events of each frame; see docs/rules.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware.rules.engine import RuleEngine

__all__ = ["RuleEngine"]


def __getattr__(name: str) -> Any:
    # Imported lazily: the config schema imports firmware.rules.config, and the engine
    # imports the schema.
    if name == "RuleEngine":
        from firmware.rules.engine import RuleEngine

        return RuleEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
