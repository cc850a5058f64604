"""Building blocks shared by every config section."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

NonNegSeconds = Annotated[float, Field(ge=0)]
PosSeconds = Annotated[float, Field(gt=0)]
Point = tuple[float, float]

ZonePurpose = Literal[
    "high_value", "till", "exit", "entrance", "staff_only", "fire_exit", "general"
]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
