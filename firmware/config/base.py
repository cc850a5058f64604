"""Building blocks shared by every config section."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NonNegSeconds = Annotated[float, Field(ge=0)]
PosSeconds = Annotated[float, Field(gt=0)]
Point = tuple[float, float]

ZonePurpose = Literal[
    "high_value", "till", "exit", "entrance", "staff_only", "fire_exit", "general"
]


class Section(BaseModel):
    # allow_inf_nan=False: inf/nan are refused everywhere ("Input should be a finite number");
    # an infinite on_s kept a light on and killed the deterrents' backstop thread
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


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


# -- one time-of-day grammar: "H:MM" or "HH:MM", 24 h clock, normalised to "HH:MM" ---------
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})")


def parse_time_of_day(text: str) -> int:
    """Minutes since midnight for 'H:MM' / 'HH:MM' (00:00 to 23:59); ValueError otherwise."""
    m = _TIME_OF_DAY.fullmatch(text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00 to 23:59)")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_window(text: str) -> tuple[int, int]:
    """(start, end) minutes of the day for 'HH:MM-HH:MM' (may cross midnight)."""
    parts = text.split("-")
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = parse_time_of_day(parts[0]), parse_time_of_day(parts[1])
    except ValueError:
        raise ValueError(f"{text!r} is not 'HH:MM-HH:MM' (24 h clock)") from None
    if a == b:
        raise ValueError(f"window {text!r} starts and ends at the same time")
    return a, b


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _normal_time(text: str) -> str:
    return _hhmm(parse_time_of_day(text))


def _normal_window(text: str) -> str:
    a, b = parse_window(text)
    return f"{_hhmm(a)}-{_hhmm(b)}"


TimeOfDay = Annotated[str, AfterValidator(_normal_time)]
TimeWindow = Annotated[str, AfterValidator(_normal_window)]


# -- one path resolver and one config hash --------------------------------------------------
def resolve_path(p: str | Path, base_dir: Path | None) -> Path:
    """A path from the config: ``~`` expanded, relative paths taken from the config file's
    folder (``base_dir``; the working directory when the config has no file)."""
    path = Path(p).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def config_hash(text: str) -> str:
    """The config's identity as the hub sees it (birth ``config_hash``): sha256 of its text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
