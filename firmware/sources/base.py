"""The frame-source interface and its errors."""

from __future__ import annotations

from typing import Protocol

from firmware.types import Frame


class SourceError(OSError):
    """A frame source that cannot be opened or read; the message names the source and why."""


class FrameSource(Protocol):
    """Delivers frames in order. ``read`` returns None at the end of a finite source."""

    name: str
    fps: float  # nominal frame rate (clip rate, or the rate asked of the camera)
    live: bool  # a camera (drop frames when behind) rather than a recording (never drop in --fast)
    frame_size: tuple[int, int]  # (width, height) of the main image, known once open

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...
