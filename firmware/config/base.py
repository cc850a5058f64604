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


def check_in_image(pts) -> None:
    """Raises ValueError naming the first point outside the image (normalised 0..1)."""
    for i, (x, y) in enumerate(pts):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"point {i} ({x}, {y}) is outside the image (coordinates are 0..1)")


def check_polygon(pts, what: str) -> None:
    """A polygon of at least 3 points, all inside the image; ``what`` names it in the error."""
    if len(pts) < 3:
        raise ValueError(f"{what} needs at least 3 points, got {len(pts)}")
    check_in_image(pts)
