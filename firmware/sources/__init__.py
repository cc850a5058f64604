"""Frame sources behind one small interface: picamera2, video files, image folders."""

from __future__ import annotations

from pathlib import Path

from firmware.sources.base import FrameSource, SourceError
from firmware.sources.images import ImageFolderSource
from firmware.sources.reader import FrameReader, SourceNotice
from firmware.sources.video import VideoFileSource


def open_source_factory(spec: str, camera_cfg, fps: float | None = None):
    """A zero-argument factory for the source named by ``spec`` ('picamera2', a file, a folder)."""
    if spec in ("picamera2", "camera", "picamera2:0"):
        from firmware.sources.picamera import PiCameraSource

        return lambda: PiCameraSource(
            tuple(camera_cfg.resolution),
            tuple(camera_cfg.inference_resolution),
            fps or camera_cfg.fps,
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        return lambda: ImageFolderSource(path, fps or camera_cfg.fps)
    return lambda: VideoFileSource(path, fps)


__all__ = [
    "FrameReader",
    "FrameSource",
    "ImageFolderSource",
    "SourceError",
    "SourceNotice",
    "VideoFileSource",
    "open_source_factory",
]
