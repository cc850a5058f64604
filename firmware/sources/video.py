"""Recorded video files (MPEG-1, MP4, AVI, ...) through OpenCV's FFmpeg backend."""

from __future__ import annotations

from pathlib import Path

import cv2

from firmware.sources.base import SourceError
from firmware.types import Frame


class VideoFileSource:
    """Frames of a video file; timestamps are the clip's own time (index / fps)."""

    live = False

    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        self.name = str(self.path)
        self._fps_override = fps
        self.fps = fps or 25.0
        self.frame_count: int | None = None
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self.frame_size = (0, 0)

    def open(self) -> None:
        if not self.path.exists():
            raise SourceError(f"video file {self.path}: not found")
        if not self.path.is_file():
            raise SourceError(f"video file {self.path}: not a file")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            cap.release()
            raise SourceError(
                f"video file {self.path}: cannot decode (not a video, or a codec FFmpeg lacks)"
            )
        clip_fps = cap.get(cv2.CAP_PROP_FPS)
        if not self._fps_override and clip_fps and 1 <= clip_fps <= 240:
            self.fps = float(clip_fps)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 else None
        self._cap = cap
        self.frame_size = (first.shape[1], first.shape[0])
        self._index = 0
        self._first = first

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"video file {self.path}: read before open")
        if self._first is not None:  # the frame read while probing the file
            image, self._first = self._first, None
        else:
            ok, image = self._cap.read()
            if not ok:
                return None
        frame = Frame(self._index, self._index / self.fps, image)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
