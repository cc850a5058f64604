"""The video path (`vigil-eval anonymise --video`, the unit's own loop) on real CAVIAR frames:
one output frame per input, a still person stays masked for a minute, and inference that
fails masks whole frames (a stall without detections: tests/test_privacy.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.paths import eval_data_dir
from firmware.recording.clip import decode_clip

pytestmark = pytest.mark.data

INRIA = eval_data_dir() / "caviar" / "inria"


@pytest.fixture(scope="module")
def waiting():
    """Browse_WhileWaiting1 607-619: a person waits, standing still, and ground truth."""
    if not (INRIA / "frames" / "mapping.csv").is_file():
        pytest.skip(f"CAVIAR evaluation data not found under {eval_data_dir()}")
    try:
        import firmware.detect  # noqa: F401
    except ImportError:
        pytest.skip("the default detector (firmware.detect) is not in this build")
    from tools.eval.privacy import load_frames

    return [s for s in load_frames() if s.sequence == "Browse_WhileWaiting1" and s.frame >= 607]


def _looped(samples, folder: Path, n: int) -> list:
    """``n`` frames in name order, the real frames repeated (a camera watching a still scene)."""
    folder.mkdir()
    order = [samples[i % len(samples)] for i in range(n)]
    for i, s in enumerate(order):
        (folder / f"{i:05d}.jpg").symlink_to(s.image)
    return order


def _config(fps: float = 5.0):
    from firmware.config import default

    loaded = default()
    cfg = loaded.config.model_copy(deep=True)
    cfg.camera.fps = fps
    return type(loaded)(cfg, None, loaded.text)


def _run(folder: Path, loaded) -> list[tuple[np.ndarray, np.ndarray]]:
    from tools.eval.run_anonymise import anonymise_video

    out: list[tuple[np.ndarray, np.ndarray]] = []
    anonymise_video(folder, None, loaded, on_frame=lambda m, f, t: out.append((m, f.image)))
    return out


def test_still_person_stays_masked_for_a_minute(waiting, tmp_path: Path) -> None:
    """300 frames at 5 fps (60 s) of a person standing still: the scene model absorbs
    whatever does not move, yet the person's upper body is masked in every frame."""
    order = _looped(waiting, tmp_path / "still", 300)
    frames = _run(tmp_path / "still", _config(fps=5.0))
    assert len(frames) == 300
    still = max(range(len(waiting[0].persons)), key=lambda j: waiting[0].persons[j][0])
    for k, ((masked, original), s) in enumerate(zip(frames, order, strict=True)):
        x1, y1, x2, y2 = s.persons[still].astype(int).tolist()
        upper = (masked != original).any(axis=2)[y1 : y1 + (y2 - y1) // 2, x1:x2]
        assert upper.mean() >= 0.95, f"frame {k} ({k / 5:.0f} s): still person {upper.mean():.0%}"
    changed = np.mean([(m != o).any(axis=2).mean() for m, o in frames[50:]])
    assert changed < 0.5  # the shop is still visible: not whole-frame masking


def test_inference_failure_masks_whole_frames(waiting, tmp_path: Path, monkeypatch) -> None:
    from firmware.detect.detector import Detector

    real, calls = Detector.detect, []

    def flaky(self, image, score_threshold=None):
        calls.append(1)
        if 10 <= len(calls) < 15:
            raise RuntimeError("delegate lost")
        return real(self, image, score_threshold)

    monkeypatch.setattr(Detector, "detect", flaky)
    _looped(waiting, tmp_path / "f", 30)
    frames = _run(tmp_path / "f", _config())
    whole = [bool((m != o).any(axis=2).mean() > 0.99) for m, o in frames]
    assert not any(whole[:9])
    assert all(whole[9:14]), whole  # frames 9..13: inference raised
    assert all(whole[14:16]), whole  # recovering: whole until the 3rd good frame in a row
    assert not any(whole[16:]), whole


def test_vigil_eval_anonymise_video_contract(waiting, tmp_path: Path, capsys) -> None:
    from tools.eval.cli import main

    clip = tmp_path / "clip.avi"
    first = cv2.imread(str(waiting[0].image))
    h, w = first.shape[:2]
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    for s in waiting:
        vw.write(cv2.imread(str(s.image)))
    vw.release()
    out = tmp_path / "out" / "anon.mp4"
    assert main(["anonymise", "--video", str(clip), "--out", str(out)]) == 0
    frames = decode_clip(out.read_bytes())
    assert all(f.shape[:2] == (h, w) for f in frames)
    n = len(frames)
    assert n == len(waiting)
    assert f"wrote {len(waiting)} anonymised frame(s)" in capsys.readouterr().out
    assert main(["anonymise", "--video", str(tmp_path / "nope.mp4"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["anonymise", "--video", str(clip), "--out", str(tmp_path / "x.png")]) == 2
    assert ".mp4" in capsys.readouterr().err
