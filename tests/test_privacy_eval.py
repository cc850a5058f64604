"""End to end on real CAVIAR frames: every ground-truth head is masked in what the unit stores.

Needs the evaluation data (skips without it) and the default detector (skips in a build
without firmware.detect).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.events.records import Event, EventPhase, Severity
from firmware.paths import eval_data_dir
from firmware.privacy import Anonymiser, PrivacyConfig
from firmware.recording import (
    IncidentRecorder,
    IncidentStore,
    RecordingConfig,
    generate_key_file,
    load_key,
)
from firmware.recording.clip import decode_clip

pytestmark = pytest.mark.data

CAVIAR = eval_data_dir() / "caviar" / "inria"


@pytest.fixture(scope="module")
def samples():
    if not (CAVIAR / "frames" / "mapping.csv").is_file():
        pytest.skip(f"CAVIAR evaluation data not found under {eval_data_dir()}")
    from tools.eval.privacy import load_head_frames

    return load_head_frames()


@pytest.fixture(scope="module")
def detector():
    try:
        from firmware.detect import load_detector
    except ImportError:
        pytest.skip("the default detector (firmware.detect) is not in this build")
    from firmware.config import default

    return load_detector(default().config.detector)


def test_head_ground_truth_loads(samples) -> None:
    assert {s.sequence for s in samples} == {"Fight_Chase", "Fight_RunAway1", "Meet_WalkSplit"}
    assert sum(len(s.heads) for s in samples) > 300
    for s in samples[:10]:
        img = cv2.imread(str(s.image))
        h, w = img.shape[:2]
        assert (s.heads[:, 2] > s.heads[:, 0]).all()
        assert (
            (s.heads[:, :2] >= -8).all()
            and (s.heads[:, 2] <= w + 8).all()
            and (s.heads[:, 3] <= h + 8).all()
        )


def test_gt_boxes_mask_every_head(samples) -> None:
    """The masking geometry alone: from the annotated person boxes, every head is covered."""
    from tools.eval.privacy import Ours, evaluate

    r = evaluate(Ours("gt"), samples, progress=False)
    assert r["heads_covered_95"] == 1.0
    assert r["frame_area_masked"] < 0.1


def test_vigil_eval_anonymise_writes_masked_pngs(samples, detector, tmp_path: Path) -> None:
    from tools.eval import run_anonymise

    seq = [s for s in samples if s.sequence == "Fight_Chase"][:8]
    src = tmp_path / "in"
    src.mkdir()
    for s in seq:
        (src / s.image.name).symlink_to(s.image)
    out = tmp_path / "out"
    assert run_anonymise.run(argparse.Namespace(images=str(src), out=str(out), config=None)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(s.image.stem + ".png" for s in seq)
    fill = np.array(PrivacyConfig().color)
    covered = []
    for s in seq:
        img = cv2.imread(str(out / (s.image.stem + ".png")))
        for x1, y1, x2, y2 in s.heads.astype(int).tolist():
            region = img[max(y1, 0) : y2, max(x1, 0) : x2]
            covered.append((region == fill).all(axis=2).mean())
    assert np.mean(np.array(covered) >= 0.95) >= 0.95


def test_replayed_incident_clip_masks_every_head(
    samples, detector, tmp_path: Path, monkeypatch
) -> None:
    """A replay that makes an incident: decrypted clip plays, every annotated head is masked,
    and nothing the unit wrote holds an image or video in the clear."""
    from firmware.config import default
    from firmware.track import Tracker

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    key_path = tmp_path / "rec.key"
    generate_key_file(key_path)
    cfg = default().config
    seq = [s for s in samples if s.sequence == "Fight_Chase"][:30]
    h, w = cv2.imread(str(seq[0].image)).shape[:2]
    rcfg = RecordingConfig(key_file=str(key_path), pre_event_s=0.2, post_event_s=60.0)
    data = tmp_path / "data"
    rec = IncidentRecorder(rcfg, data, 25.0, (w, h), model_info={"detector": cfg.detector.model})
    anon = Anonymiser(cfg.privacy)
    tracker = Tracker(cfg.tracker, fps=25.0)
    thr = min(cfg.privacy.min_score, cfg.detector.score_threshold)
    for i, s in enumerate(seq):
        img = cv2.imread(str(s.image))
        det = detector.detect(img, score_threshold=thr)
        tracks = tracker.update(
            det.select(det.scores >= cfg.detector.score_threshold), s.frame / 25.0, image=img
        )
        rec.push(i, i / 25.0, anon.apply(img, det, tracks), tracks)
        if i == 0:
            rec.on_event(Event("fight", "fight", EventPhase.START, Severity.ALERT, 0.0, 0, 0.0, 0))
    rec.close()
    assert len(rec.recorded) == 1
    for p in list(data.rglob("*")) + list((tmp_path / "tmp").rglob("*")):
        if p.is_file():
            raw = p.read_bytes()
            assert cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) is None, p
            assert b"ftyp" not in raw[:16] and not raw.startswith(b"RIFF"), p
    clip = decode_clip(IncidentStore(data).decrypt_clip(rec.recorded[0], load_key(key_path)))
    assert len(clip) == len(seq)
    fill = np.array(cfg.privacy.color, np.int16)
    for frame, s in zip(clip, seq, strict=True):
        for x1, y1, x2, y2 in s.heads.astype(int).tolist():
            region = frame[max(y1, 0) : y2, max(x1, 0) : x2].astype(np.int16)
            ok = (np.abs(region - fill) <= 24).all(axis=2).mean()
            assert ok >= 0.95, (
                f"{s.sequence}/{s.frame}: head at {(x1, y1, x2, y2)} visible ({ok:.0%} masked)"
            )
