"""Local event sinks: JSON lines for replays (the hub link is firmware/link)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from firmware.events.records import Event


class JsonLinesSink:
    """One JSON object per line, flushed per event so a crash loses nothing written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._fh: TextIO = self.path.open("w", encoding="utf-8")
        except OSError as e:
            raise OSError(f"--events-out {self.path}: cannot write ({e.strerror})") from None
        self.count = 0

    def emit(self, event: Event) -> None:
        self._fh.write(event.to_json() + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        self._fh.close()
