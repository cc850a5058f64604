"""Clips encoded by OpenCV entirely in memory, so no unencrypted video ever touches a disk.

The encoder writes to an anonymous memory file (``memfd_create``) that OpenCV reaches
through a symlink with the right extension in a private temporary folder; the link is
removed as soon as the encoder has opened the file. Linux only (the unit runs Linux).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import cv2
import numpy as np

EXTENSIONS = {"mp4v": ".mp4", "MJPG": ".avi"}


class _MemoryFile:
    """An anonymous in-memory file and a short-lived path naming it."""

    def __init__(self, suffix: str, data: bytes | None = None):
        if not hasattr(os, "memfd_create"):
            raise RuntimeError("in-memory clip encoding needs Linux (memfd_create)")
        self.fd = os.memfd_create("vigil-clip", os.MFD_CLOEXEC)
        if data:
            os.write(self.fd, data)
            os.lseek(self.fd, 0, os.SEEK_SET)
        self._dir = tempfile.mkdtemp(prefix="vigil-clip-")  # mode 700
        self.path = os.path.join(self._dir, "clip" + suffix)
        os.symlink(f"/proc/{os.getpid()}/fd/{self.fd}", self.path)

    def unlink(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def read_all(self) -> bytes:
        size = os.fstat(self.fd).st_size
        chunks, off = [], 0
        while off < size:
            chunk = os.pread(self.fd, min(1 << 24, size - off), off)
            if not chunk:
                break
            chunks.append(chunk)
            off += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.unlink()
        os.close(self.fd)


class MemoryClipWriter:
    """Encode frames (BGR, any size: resized to ``size``) into bytes held in memory."""

    def __init__(self, codec: str, fps: float, size: tuple[int, int]):
        self.size = (int(size[0]), int(size[1]))
        self.frames = 0
        self._mem = _MemoryFile(EXTENSIONS[codec])
        try:
            self._writer = cv2.VideoWriter(
                self._mem.path,
                cv2.CAP_FFMPEG,
                cv2.VideoWriter_fourcc(*codec),
                float(fps),
                self.size,
            )
            if not self._writer.isOpened():
                raise RuntimeError(f"OpenCV cannot encode {codec} clips here")
        except BaseException:
            self._mem.close()
            raise
        self._mem.unlink()  # the encoder holds the file open; no name is left anywhere

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def finish(self) -> bytes:
        """The encoded clip; the memory file is released."""
        self._writer.release()
        try:
            return self._mem.read_all()
        finally:
            self._mem.close()

    def abort(self) -> None:
        self._writer.release()
        self._mem.close()


def decode_clip(data: bytes, codec: str = "mp4v") -> list[np.ndarray]:
    """All frames of an encoded clip held in memory (for checks; nothing is written)."""
    mem = _MemoryFile(EXTENSIONS[codec], data)
    try:
        cap = cv2.VideoCapture(mem.path, cv2.CAP_FFMPEG)
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        return frames
    finally:
        mem.close()
