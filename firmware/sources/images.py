"""A folder of still images (JPEG, PNG, BMP) replayed as a clip, in file-name order."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from firmware.sources.base import SourceError
from firmware.types import Frame

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class ImageFolderSource:
    """Each image is one frame at ``fps``; unreadable files are skipped with a warning."""

    live = False

    def __init__(self, folder: str | Path, fps: float = 10.0):
        self.folder = Path(folder)
        self.name = str(self.folder)
        self.fps = fps
        self.files: list[Path] = []
        self.skipped = 0
        self._pos = 0
        self._index = 0
        self.frame_size = (0, 0)

    @property
    def frame_count(self) -> int:
        return len(self.files)

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder}: not found")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"image folder {self.folder}: no .jpg/.png/.bmp images")
        self._pos = 0
        self._index = 0
        first = next(
            (im for im in map(lambda f: cv2.imread(str(f)), self.files[:5]) if im is not None), None
        )
        if first is None:
            raise SourceError(f"image folder {self.folder}: the first images cannot be decoded")
        self.frame_size = (first.shape[1], first.shape[0])

    def read(self) -> Frame | None:
        while self._pos < len(self.files):
            path = self.files[self._pos]
            self._pos += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                log.warning("image %s: cannot decode, skipped", path)
                continue
            frame = Frame(self._index, self._index / self.fps, image)
            self._index += 1
            return frame
        return None

    def close(self) -> None:
        self._pos = len(self.files)
