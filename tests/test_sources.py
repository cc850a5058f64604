"""Frame sources and the threaded reader, on the real demo clip and on exact situations."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.sources import FrameReader, ImageFolderSource, SourceError, VideoFileSource
from firmware.types import Frame

DEMO_CLIP = Path(__file__).resolve().parents[1] / "firmware" / "demo" / "vtest-30s.mp4"


def drain(reader: FrameReader, limit: float = 30.0) -> list[Frame]:
    frames, deadline = [], time.monotonic() + limit
    while not reader.ended and time.monotonic() < deadline:
        f = reader.next(timeout=0.5)
        if f is not None:
            frames.append(f)
    reader.stop()
    return frames


def test_fast_replay_reads_every_frame_in_order():
    reader = FrameReader(lambda: VideoFileSource(DEMO_CLIP), paced=False)
    reader.start()
    assert reader.fps == pytest.approx(10.0)
    assert reader.frame_size == (640, 480)
    frames = drain(reader)
    assert len(frames) == 300
    assert [f.index for f in frames] == list(range(300))
    assert frames[-1].timestamp == pytest.approx(29.9)
    assert reader.dropped == 0


def test_paced_replay_runs_at_the_clip_rate():
    reader = FrameReader(lambda: VideoFileSource(DEMO_CLIP), paced=True)
    reader.start()
    t0, n = time.monotonic(), 0
    while time.monotonic() - t0 < 1.0:
        n += reader.next(timeout=0.5) is not None
    reader.stop()
    assert 7 <= n <= 13  # 10 fps clip: about 10 frames in a second, not 300


def test_loop_restarts_the_clip_with_continuing_time(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((48, 64, 3), i * 40, np.uint8))
    reader = FrameReader(lambda: ImageFolderSource(folder, fps=10), paced=False, loop=True)
    reader.start()
    frames = [f for f in (reader.next(1.0) for _ in range(8)) if f is not None]
    reader.stop()
    assert len(frames) == 8
    assert [f.index for f in frames] == list(range(8))
    ts = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
    assert int(frames[3].image[0, 0, 0]) == 0  # back to the first image


def test_unreadable_clip_is_one_clear_error(tmp_path):
    junk = tmp_path / "clip.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match=r"clip\.mp4: cannot decode"):
        VideoFileSource(junk).open()
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "missing.mpg").open()
    with pytest.raises(SourceError, match="no .jpg"):
        ImageFolderSource(tmp_path).open()


def test_image_folder_skips_corrupt_images(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    cv2.imwrite(str(tmp_path / "c.jpg"), np.zeros((32, 32, 3), np.uint8))
    src = ImageFolderSource(tmp_path)
    src.open()
    got = [src.read(), src.read(), src.read()]
    assert got[0] is not None and got[1] is not None and got[2] is None
    assert src.skipped == 1


class StallingCamera:
    """A live source that delivers ``frames`` frames and then blocks forever, like a wedged driver."""

    live = True
    fps = 50.0
    frame_size = (32, 24)

    def __init__(self, frames: int, opened: list):
        self.name = f"stalling-camera-{len(opened)}"
        self.frames = frames
        self.opened = opened
        self.n = 0
        self.block = threading.Event()

    def open(self):
        self.opened.append(self)

    def read(self):
        if self.n >= self.frames:
            self.block.wait(60)
            return None
        self.n += 1
        time.sleep(0.01)
        return Frame(self.n, time.monotonic(), np.zeros((24, 32, 3), np.uint8))

    def close(self):
        self.block.set()


def test_a_stalled_camera_is_reopened_with_health_notices_and_never_hangs_the_loop():
    opened: list = []
    reader = FrameReader(lambda: StallingCamera(5, opened), stall_timeout_s=0.3, backoff_s=0.1)
    reader.start()
    frames, notices = [], []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:
        call = time.monotonic()
        f = reader.next(timeout=0.2)
        assert time.monotonic() - call < 1.0  # next() always comes back
        if f is not None:
            frames.append(f)
        notices += reader.take_notices()
    reader.stop()
    kinds = [n.kind for n in notices]
    assert "stalled" in kinds and "reopened" in kinds
    assert len(opened) >= 2
    assert len(frames) >= 10  # frames from the first and the reopened camera
    assert [f.index for f in frames] == list(range(len(frames)))
