"""Detector stage: the real LiteRT interpreter on the committed int8 NanoDet, model checks."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.config.schema import VigilConfig
from firmware.detect import DetectorConfig, ModelError, load_detector, read_manifest
from firmware.detect.detector import tile_windows
from firmware.detect.nanodet import COCO80_TO_91, NanoDetDecoder
from firmware.detect.nms import nms
from firmware.paths import MODELS_DIR, eval_data_dir
from firmware.types import BACKPACK, PERSON

COCO = eval_data_dir() / "coco128"
needs_coco = pytest.mark.skipif(not COCO.is_dir(), reason=f"evaluation data absent: {COCO}")
DEFAULT = DetectorConfig().model


@pytest.fixture(scope="module")
def detector():
    return load_detector(DetectorConfig(threads=1), models_dir=MODELS_DIR)


def _yolo_people(label: Path, w: int, h: int) -> np.ndarray:
    rows = np.loadtxt(label, ndmin=2)
    rows = rows[rows[:, 0] == 0]
    cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@needs_coco
@pytest.mark.data
@pytest.mark.parametrize("stem", ["000000000036", "000000000061", "000000000074"])
def test_people_found_on_coco_images(detector, stem):
    img = cv2.imread(str(COCO / "images" / "train2017" / f"{stem}.jpg"))
    gt = _yolo_people(COCO / "labels" / "train2017" / f"{stem}.txt", img.shape[1], img.shape[0])
    d = detector.detect(img)
    people = d.boxes[d.classes == PERSON]
    assert len(gt) and len(people)
    best = _iou_matrix(gt, people).max(axis=1)
    # The clearly visible (large) people are each found with a well-placed box.
    big = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) > 0.02 * img.shape[0] * img.shape[1]
    assert (best[big] > 0.6).all(), best
    assert (d.scores >= detector.cfg.score_threshold).all()
    assert np.isin(d.classes, [1, 27, 31, 33]).all()
    assert d.keypoints is None
    assert set(detector.last_timings) >= {"preprocess", "inference", "decode"}
    assert detector.last_timings["inference"] > 0


@needs_coco
@pytest.mark.data
@pytest.mark.parametrize("model", ["nanodet-m-416-int8", "nanodet-m-512x384-int8"])
def test_both_input_sizes_find_people_in_a_4_3_frame(model):
    # The 4:3 build decodes its non-square grids (64x48, 32x24, 16x12) to the right place:
    # a wrong row length would scatter the boxes. A 4:3 COCO image at CAVIAR's 384x288.
    det = load_detector(DetectorConfig(model=model, threads=1), models_dir=MODELS_DIR)
    assert det.input_size == read_manifest(MODELS_DIR)[model].input_size
    stem = "000000000192"  # 640x480, four people
    img = cv2.imread(str(COCO / "images" / "train2017" / f"{stem}.jpg"))
    frame = cv2.resize(img, (384, 288), interpolation=cv2.INTER_AREA)
    gt = _yolo_people(COCO / "labels" / "train2017" / f"{stem}.txt", 384, 288)
    d = det.detect(frame, score_threshold=0.2)
    people = d.boxes[d.classes == PERSON]
    assert len(gt) and len(people)
    big = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) > 0.02 * 384 * 288
    assert big.sum() >= 2
    best = _iou_matrix(gt, people).max(axis=1)
    assert (best[big] > 0.6).all(), best


def test_blank_frame_any_size_gives_nothing_and_stays_in_frame(detector):
    assert len(detector.detect(np.full((360, 640, 3), 127, np.uint8))) == 0
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (123, 457, 3), dtype=np.uint8)
    d = detector.detect(noise, score_threshold=0.01)
    assert d.boxes.dtype == np.float32 and d.scores.dtype == np.float32
    assert (d.boxes[:, [0, 2]] <= 457).all() and (d.boxes[:, [1, 3]] <= 123).all()
    assert (d.boxes >= 0).all()


def test_identity_and_backend(detector):
    spec = read_manifest(MODELS_DIR)[DEFAULT]
    assert detector.name == DEFAULT
    assert detector.sha256 == spec.sha256
    assert detector.backend == "cpu"


def _copy_models(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    shutil.copy(MODELS_DIR / "manifest.toml", d)
    spec = read_manifest(MODELS_DIR)[DEFAULT]
    shutil.copy(spec.path(MODELS_DIR), d)
    return d


def test_tampered_model_refused_with_hashes(tmp_path):
    d = _copy_models(tmp_path)
    f = d / read_manifest(d)[DEFAULT].file
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError) as e:
        load_detector(DetectorConfig(), models_dir=d)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg
    assert "sha256 expected " + read_manifest(d)[DEFAULT].sha256 in msg and "actual" in msg


def test_missing_model_refused(tmp_path):
    d = _copy_models(tmp_path)
    f = d / read_manifest(d)[DEFAULT].file
    f.unlink()
    with pytest.raises(ModelError, match=r"model file .*nanodet.*\.tflite is missing"):
        load_detector(DetectorConfig(), models_dir=d)
    assert issubclass(ModelError, ValueError)


def test_invalid_tflite_refused_even_with_matching_hash(tmp_path):
    import hashlib

    d = _copy_models(tmp_path)
    spec = read_manifest(d)[DEFAULT]
    junk = b"\x1c\x00\x00\x00TFL3" + b"\x00garbage" * 100
    (d / spec.file).write_bytes(junk)
    manifest = d / "manifest.toml"
    manifest.write_text(manifest.read_text().replace(spec.sha256, hashlib.sha256(junk).hexdigest()))
    with pytest.raises(ModelError, match="is not a valid TFLite model") as e:
        load_detector(DetectorConfig(), models_dir=d)
    assert "\n" not in str(e.value)
    (d / spec.file).write_bytes(b"<html>not a model</html>")
    manifest.write_text(
        manifest.read_text().replace(
            hashlib.sha256(junk).hexdigest(),
            hashlib.sha256(b"<html>not a model</html>").hexdigest(),
        )
    )
    with pytest.raises(ModelError, match="is not a valid TFLite model"):
        load_detector(DetectorConfig(), models_dir=d)


def test_unknown_model_and_missing_manifest(tmp_path):
    with pytest.raises(ModelError, match=r"'no-such-model' is not in .*known: .*nanodet"):
        load_detector(DetectorConfig(model="no-such-model"), models_dir=MODELS_DIR)
    with pytest.raises(ModelError, match="model manifest missing"):
        load_detector(DetectorConfig(), models_dir=tmp_path)


def test_edgetpu_requested_falls_back_to_cpu_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="firmware.detect"):
        det = load_detector(DetectorConfig(edgetpu=True, threads=1), models_dir=MODELS_DIR)
    assert det.backend == "cpu"
    assert any("Edge TPU" in r.getMessage() for r in caplog.records)


def test_decoder_recovers_a_known_box():
    dec = NanoDetDecoder((416, 416), class_ids=(1, 27))
    outs = []
    for s in (8, 16, 32):
        n = (416 // s) ** 2
        cls = np.zeros((1, n, 80), np.float32)
        reg = np.full((1, n, 44), -20.0, np.float32)
        if s == 16:
            cell = 5 * 26 + 7  # row 5, column 7: centre (120, 88)
            cls[0, cell, 0] = 0.9
            cls[0, cell, 24] = 0.5  # backpack
            for side, dist in enumerate((2, 3, 4, 5)):  # l, t, r, b in strides
                reg[0, cell, side * 11 + dist] = 20.0
        outs += [reg, cls]  # order must not matter
    boxes, scores, ids = dec(outs, 0.3)
    order = np.argsort(-scores)
    np.testing.assert_allclose(boxes[order[0]], [120 - 32, 88 - 48, 120 + 64, 88 + 80], atol=1e-3)
    assert list(ids[order]) == [PERSON, BACKPACK]
    np.testing.assert_allclose(scores[order], [0.9, 0.5])
    assert COCO80_TO_91[0] == 1 and COCO80_TO_91[26] == 31 and COCO80_TO_91[28] == 33


def _nanodet_outputs(width: int, height: int, hot: dict[int, tuple[int, int]]) -> list:
    """Raw NanoDet outputs for a width x height input: a person in cell (row, column) of each
    stride in ``hot``, with distances l, t, r, b = 2, 3, 4, 5 strides."""
    outs = []
    for s in (8, 16, 32):
        n = (width // s) * (height // s)
        cls = np.zeros((1, n, 80), np.float32)
        reg = np.full((1, n, 44), -20.0, np.float32)
        if s in hot:
            row, col = hot[s]
            cell = row * (width // s) + col
            cls[0, cell, 0] = 0.9
            for side, dist in enumerate((2, 3, 4, 5)):
                reg[0, cell, side * 11 + dist] = 20.0
        outs += [cls, reg]
    return outs


def test_decoder_non_square_grid_is_row_major_over_the_width():
    # 544x416 (4:3): stride 16 grid is 34 columns x 26 rows; stride 32 is 17 x 13.
    dec = NanoDetDecoder((544, 416), class_ids=(1,))
    boxes, scores, _ = dec(_nanodet_outputs(544, 416, {16: (5, 30), 32: (12, 16)}), 0.3)
    got = boxes[np.argsort(boxes[:, 0])]
    c16 = (30.5 * 16, 5.5 * 16)  # (488, 88): a column beyond a square grid's 26
    c32 = (16.5 * 32, 12.5 * 32)  # (528, 400): the bottom-right cell
    want = [
        [c16[0] - 32, c16[1] - 48, c16[0] + 64, c16[1] + 80],
        [c32[0] - 64, c32[1] - 96, c32[0] + 128, c32[1] + 160],
    ]
    np.testing.assert_allclose(got, sorted(want), atol=1e-3)
    np.testing.assert_allclose(scores, [0.9, 0.9])
    # Outputs of a square model do not fit a non-square decoder (and vice versa).
    with pytest.raises(ValueError, match="stride"):
        dec(_nanodet_outputs(416, 416, {}), 0.3)
    with pytest.raises(ValueError, match="stride"):
        NanoDetDecoder((416, 416))(_nanodet_outputs(544, 416, {}), 0.3)


def test_flip_merge_puts_the_mirror_view_back_in_place():
    # A person in cell (row 5, column 30) of the 544x416 stride-16 grid (34 columns), with
    # l, t, r, b = 2, 3, 4, 5 strides. In the mirror image the same person sits in column
    # 34 - 1 - 30 = 3 with left and right swapped. Merged, both views agree on one box.
    dec = NanoDetDecoder((544, 416), class_ids=(1,))
    outs = _nanodet_outputs(544, 416, {16: (5, 30)})
    mirror = _nanodet_outputs(544, 416, {})
    cls, reg = mirror[2], mirror[3]  # stride 16
    cell = 5 * 34 + 3
    cls[0, cell, 0] = 0.5
    for side, dist in enumerate((4, 3, 2, 5)):
        reg[0, cell, side * 11 + dist] = 20.0
    boxes, scores, _ = dec(outs, 0.3, mirrored=mirror)
    c = (30.5 * 16, 5.5 * 16)
    np.testing.assert_allclose(boxes, [[c[0] - 32, c[1] - 48, c[0] + 64, c[1] + 80]], atol=1e-3)
    np.testing.assert_allclose(scores, [0.7], atol=1e-6)  # (0.9 + 0.5) / 2
    # Where the two views disagree on a distance, the merged one lies between them.
    reg[0, cell, 0 * 11 + 4] = -20.0
    reg[0, cell, 0 * 11 + 6] = 20.0  # the mirror now says right = 6 strides, not 4
    boxes, _, _ = dec(outs, 0.3, mirrored=mirror)
    assert c[0] + 64 < boxes[0, 2] < c[0] + 96


@needs_coco
@pytest.mark.data
def test_flip_test_detections_are_mirror_symmetric():
    # With the test-time flip, a frame and its mirror image give mirrored boxes and equal
    # scores (the merge treats both views alike); without it they differ slightly.
    det = load_detector(DetectorConfig(threads=1, flip_test=True, background=False))
    img = cv2.imread(str(COCO / "images" / "train2017" / "000000000192.jpg"))
    frame = cv2.resize(img, (512, 384), interpolation=cv2.INTER_AREA)  # exact model size
    a = det.detect(frame, score_threshold=0.2)
    b = det.detect(np.ascontiguousarray(frame[:, ::-1]), score_threshold=0.2)
    assert len(a) >= 2 and len(a) == len(b)
    oa, ob = np.argsort(-a.scores, kind="stable"), np.argsort(-b.scores, kind="stable")
    np.testing.assert_allclose(a.scores[oa], b.scores[ob], atol=1e-5)
    back = np.stack([512 - b.boxes[:, 2], b.boxes[:, 1], 512 - b.boxes[:, 0], b.boxes[:, 3]], 1)
    np.testing.assert_allclose(a.boxes[oa], back[ob], atol=1e-2)
    assert det.last_timings["inference"] > 0


def test_nms_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([1, 1, 27, 1], np.int16)
    assert list(nms(boxes, scores, classes, 0.5)) == [0, 2, 3]
    assert list(nms(boxes, scores, None, 0.5)) == [0, 3]
    assert list(nms(boxes, scores, classes, 0.5, max_out=2)) == [0, 2]


def test_tile_windows_cover_frame_with_overlap():
    w = tile_windows(384, 288, (2, 2), 0.25, True)
    assert w.shape == (5, 4)
    assert tuple(w[0]) == (0, 0, 384, 288)
    tiles = w[1:]
    assert tiles[:, 0].min() == 0 and tiles[:, 2].max() == 384 and tiles[:, 3].max() == 288
    assert tiles[0, 2] > tiles[1, 0]  # neighbours overlap
    assert tile_windows(640, 480, (1, 1), 0.25, False).shape == (1, 4)


def test_config_section_lives_here_and_validates():
    cfg = VigilConfig()
    assert isinstance(cfg.detector, DetectorConfig)
    with pytest.raises(ValueError, match="person"):
        DetectorConfig(classes=[27])
    with pytest.raises(ValueError):
        DetectorConfig(tiles=(0, 2))
    with pytest.raises(ValueError):
        DetectorConfig(unknown_key=1)


def test_edgetpu_build_listed_but_no_delegate_falls_back(tmp_path, caplog):
    d = _copy_models(tmp_path)
    manifest = d / "manifest.toml"
    text = manifest.read_text()
    head = f"[models.{DEFAULT}]\n"
    manifest.write_text(text.replace(head, head + 'edgetpu_sha256 = "' + "0" * 64 + '"\n', 1))
    with caplog.at_level(logging.WARNING, logger="firmware.detect"):
        det = load_detector(DetectorConfig(edgetpu=True, threads=1), models_dir=d)
    assert det.backend == "cpu"
    assert any("delegate" in r.getMessage() for r in caplog.records)


def test_model_build_needs_the_conversion_venv(capsys):
    pytest.importorskip("numpy")
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        from tools.models.build import main

        assert main([]) == 2
        assert "conversion venv" in capsys.readouterr().err
    else:  # pragma: no cover - only inside the conversion venv
        pytest.skip("tensorflow present: this is the conversion venv")
