"""Board profiles from hw/: which header pins exist and which are reserved (and why).

Profiles are data (``hw/boards/<name>.toml``) so a new carrier board is a new file, not code.
``$VIGIL_HW`` points elsewhere (tests, a unit with a custom carrier).
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from firmware.paths import REPO_ROOT


class BoardError(ValueError):
    """An unknown board name or an unreadable profile."""


def hw_dir() -> Path:
    return Path(os.environ.get("VIGIL_HW", REPO_ROOT / "hw"))


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    gpio: tuple[int, int]
    pwm: tuple[int, ...]
    reserved: dict[int, str]
    csi_ports: int = 1
    cameras: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)

    def exists(self, bcm: int) -> bool:
        return self.gpio[0] <= bcm <= self.gpio[1]

    def reserved_reason(self, bcm: int) -> str | None:
        """Why a pin may not be used for an output/input, or None if it is free."""
        if not self.exists(bcm):
            return f"GPIO{bcm} is not on this board's header (GPIO{self.gpio[0]}-{self.gpio[1]})"
        return self.reserved.get(bcm)

    def free_pins(self) -> list[int]:
        return [p for p in range(self.gpio[0], self.gpio[1] + 1) if p not in self.reserved]


def list_boards() -> list[str]:
    d = hw_dir() / "boards"
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


@functools.cache
def _load(path: Path, mtime: float) -> Board:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Board(
            name=data["name"],
            title=data.get("title", data["name"]),
            gpio=(int(data["gpio"][0]), int(data["gpio"][1])),
            pwm=tuple(int(p) for p in data.get("pwm", [])),
            reserved={int(k): str(v) for k, v in data.get("reserved", {}).items()},
            csi_ports=int(data.get("csi_ports", 1)),
            cameras=tuple(data.get("cameras", [])),
            accelerators=tuple(data.get("accelerators", [])),
            notes=dict(data.get("notes", {})),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError, TypeError, IndexError) as e:
        raise BoardError(f"board profile {path} is broken: {e}") from None


def load_board(name: str) -> Board:
    """The profile of a board by name ('pi4', 'pi5', 'cm4'); BoardError names the known ones."""
    path = hw_dir() / "boards" / f"{name}.toml"
    if not name.replace("-", "").replace("_", "").isalnum() or not path.is_file():
        known = ", ".join(list_boards()) or f"none found in {hw_dir() / 'boards'}"
        raise BoardError(f"unknown board {name!r} (known boards: {known})")
    return _load(path, path.stat().st_mtime)


def load_table(name: str) -> dict:
    """hw/<name>.toml (cameras, accelerators) as a dict; empty when absent."""
    path = hw_dir() / f"{name}.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _known_board(name: str) -> str:
    load_board(name)
    return name


BoardName = Annotated[str, AfterValidator(_known_board)]
"""A board name checked against hw/boards/ (for the site config's ``board``)."""
