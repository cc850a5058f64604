"""The Pi camera through picamera2 (Pi only; imported lazily so everything else runs anywhere).

Two streams, as picamera2 is meant to be used: ``main`` at recording resolution (BGR, its
"RGB888" format) for incident clips and previews, and a ``lores`` stream (YUV420, the only
format the Pi 4 ISP gives for lores) converted to BGR for inference.
"""

from __future__ import annotations

import time

import cv2

from firmware.sources.base import SourceError
from firmware.types import Frame


class PiCameraSource:
    live = True

    def __init__(
        self, resolution: tuple[int, int], lores: tuple[int, int], fps: float, camera_num: int = 0
    ):
        self.name = f"picamera2:{camera_num}"
        self.resolution = resolution
        self.lores = lores
        self.fps = fps
        self.camera_num = camera_num
        self._cam = None
        self._index = 0
        self.frame_size = (int(resolution[0]), int(resolution[1]))

    def open(self) -> None:
        try:
            from picamera2 import Picamera2  # noqa: PLC0415 - Pi only
        except ImportError as e:
            raise SourceError(
                "picamera2 is not installed: on a Pi run `sudo apt install python3-picamera2`; "
                "elsewhere give a clip with --source"
            ) from e
        try:
            cam = Picamera2(self.camera_num)
            config = cam.create_video_configuration(
                main={"size": tuple(self.resolution), "format": "RGB888"},
                lores={"size": tuple(self.lores), "format": "YUV420"},
                controls={"FrameRate": float(self.fps)},
                buffer_count=4,
            )
            cam.configure(config)
            cam.start()
        except (RuntimeError, IndexError, OSError) as e:
            raise SourceError(
                f"camera {self.camera_num}: cannot start ({e}); is the ribbon cable seated and the camera enabled?"
            ) from e
        self._cam = cam
        self._index = 0

    def read(self) -> Frame | None:
        if self._cam is None:
            raise SourceError(f"{self.name}: read before open")
        request = self._cam.capture_request()
        try:
            main = request.make_array("main")
            lores = request.make_array("lores")
            metadata = request.get_metadata()
        finally:
            request.release()  # buffers must go back to libcamera
        ts_ns = metadata.get("SensorTimestamp")
        ts = ts_ns / 1e9 if ts_ns else time.monotonic()
        lores_bgr = cv2.cvtColor(lores, cv2.COLOR_YUV2BGR_I420)
        frame = Frame(self._index, ts, main, lores_bgr)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None
