"""Static-scene (background) prior: the model on synthetic scenes, and the real detector with
it on real images (unrelated COCO pictures must come out unchanged)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from firmware.detect import DetectorConfig, load_detector
from firmware.detect.background import BackgroundModel, rescore
from firmware.paths import MODELS_DIR, eval_data_dir
from firmware.types import PERSON

H, W = 480, 640
FURNITURE = np.array([[400, 100, 470, 260]], np.float32)
COCO = eval_data_dir() / "coco128" / "images" / "train2017"
needs_coco = pytest.mark.skipif(not COCO.is_dir(), reason=f"evaluation data absent: {COCO}")


def _scene(seed: int = 0) -> np.ndarray:
    """A textured static scene with a dark furniture-like block."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(60, 200, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    x1, y1, x2, y2 = FURNITURE[0].astype(int)
    img[y1:y2, x1:x2] = (40, 45, 50)
    return img


def _unrelated(seed: int) -> np.ndarray:
    """A picture of something else entirely: random coloured blocks."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), rng.integers(0, 255, 3), np.uint8)
    for _ in range(12):
        x, y = rng.integers(0, W - 50), rng.integers(0, H - 50)
        w, h = rng.integers(80, 300, 2)
        img[y : y + h, x : x + w] = rng.integers(0, 255, 3)
    return img


def _frame(scene: np.ndarray, person: tuple[int, int] | None, rng) -> np.ndarray:
    """The scene with sensor noise, a global exposure shift, and a person blob at ``person``."""
    noise = rng.integers(-4, 5, scene.shape) + int(rng.integers(-6, 7))
    img = np.clip(scene.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    if person is not None:
        cv2.ellipse(img, person, (18, 45), 0, 0, 360, (200, 30, 160), -1)
    return img


def _box(p: tuple[int, int]) -> np.ndarray:
    x, y = p
    return np.array([[x - 20, y - 48, x + 20, y + 48]], np.float32)


def test_moving_person_rises_and_static_furniture_falls():
    rng = np.random.default_rng(1)
    scene = _scene()
    bg = BackgroundModel(warmup_frames=20)
    for i in range(40):  # a person walks left to right while the unit watches
        bg.update(_frame(scene, (30 + 12 * i, 300), rng))
        assert bg.ready == (i + 1 >= 20)
    pos = (200, 300)
    frame = _frame(scene, pos, rng)
    mask = bg.mask(frame)
    assert bg.stable(mask)
    boxes = np.concatenate([_box(pos), FURNITURE])
    fg, cover = bg.evidence(mask, boxes, (W, H))
    assert fg[0] > 0.5 and cover[0] > 0.9  # the person's box is mostly foreground
    assert fg[1] < 0.02  # the furniture is background
    # the detector's view: furniture ranked above the person (as on CAVIAR), and after
    s = rescore(np.array([0.09, 0.6]), fg, cover, weight=0.7, full=0.3)
    assert s[0] > 0.35 > s[1]
    assert s[1] < 0.05
    # a box beside the person holds only part of the moving thing: demoted
    beside = _box(pos) + np.array([24, 0, 24, 0], np.float32)
    _, c_beside = bg.evidence(mask, beside, (W, H))
    assert c_beside[0] < cover[0] - 0.3


def test_confirmed_still_person_does_not_fade_but_an_unconfirmed_one_does():
    rng = np.random.default_rng(2)
    scene = _scene()
    fast = dict(step=4.0, warmup_frames=5)
    kept, free = BackgroundModel(**fast), BackgroundModel(**fast)
    for _ in range(5):
        f = _frame(scene, None, rng)
        kept.update(f)
        free.update(f)
    pos = (300, 200)
    for _ in range(80):  # the person stands still for a long time
        f = _frame(scene, pos, rng)
        kept.update(f, keep=_box(pos))
        free.update(f)
    f = _frame(scene, pos, rng)
    fg_kept = kept.evidence(kept.mask(f), _box(pos), (W, H))[0][0]
    fg_free = free.evidence(free.mask(f), _box(pos), (W, H))[0][0]
    assert fg_kept > 0.5
    assert fg_free < 0.1


def test_live_model_relearns_after_the_camera_moved():
    rng = np.random.default_rng(6)
    scene, moved = _scene(), _unrelated(7)
    bg = BackgroundModel(warmup_frames=10, relearn_after=20)
    for _ in range(12):
        f = _frame(scene, None, rng)
        bg.update(f, mask=bg.mask(f))
    assert bg.ready and bg.stable(bg.mask(_frame(scene, None, rng)))
    for i in range(20):  # the camera now sees something else: no prior, then learn it anew
        f = _frame(moved, None, rng)
        m = bg.mask(f)
        assert not bg.stable(m)
        bg.update(f, mask=m)
        assert bg.frames_seen == (1 if i == 19 else 13 + i)
    for _ in range(9):
        f = _frame(moved, None, rng)
        bg.update(f, mask=bg.mask(f))
    f = _frame(moved, (300, 200), rng)
    m = bg.mask(f)
    assert bg.ready and bg.stable(m)
    assert bg.evidence(m, _box((300, 200)), (W, H))[0][0] > 0.5


def test_stills_warm_up_fixed_camera_vs_unrelated_pictures():
    rng = np.random.default_rng(3)
    scene = _scene()
    frames = [_frame(scene, (40 + 20 * i, 100 + 10 * i), rng) for i in range(30)]
    bg = BackgroundModel(warmup_frames=25, min_stills=12)
    bg.warm_up(frames[:10])
    assert not bg.ready  # too few images of this camera
    bg.warm_up(frames)
    assert bg.ready and bg.scene_stable
    assert bg.stable(bg.mask(frames[3]))
    # the median does not hold the walker: each frame's person is foreground there
    fg, _ = bg.evidence(bg.mask(frames[3]), _box((100, 130)), (W, H))
    assert fg[0] > 0.4
    unrelated = [_unrelated(seed) for seed in range(10, 40)]
    bg.warm_up(unrelated)
    assert not bg.scene_stable and not bg.ready
    assert not bg.stable(bg.mask(unrelated[0]))
    # a frame of another size does not match the model: no mask, no prior
    assert bg.mask(np.zeros((100, 100, 3), np.uint8)) is None


def test_a_changed_scene_is_not_stable_and_refine_snaps_to_foreground():
    rng = np.random.default_rng(4)
    scene = _scene()
    bg = BackgroundModel(min_stills=3)
    bg.warm_up([_frame(scene, None, rng) for _ in range(5)])
    assert not bg.stable(bg.mask(_unrelated(99)))  # lights changed / camera moved
    pos = (320, 240)
    mask = bg.mask(_frame(scene, pos, rng))
    shifted = _box(pos) + np.array([14, 20, 14, 20], np.float32)
    snapped = bg.refine_boxes(mask, shifted, (W, H), 1.0)
    iou = lambda a, b: (  # noqa: E731
        np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
        / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)))
    )  # fmt: skip
    assert iou(snapped[0], _box(pos)[0]) > iou(shifted[0], _box(pos)[0]) + 0.15
    half = bg.refine_boxes(mask, shifted, (W, H), 0.5)
    np.testing.assert_allclose(half, (shifted + snapped) / 2, atol=1e-3)
    assert (bg.refine_boxes(mask, FURNITURE, (W, H), 1.0) == FURNITURE).all()  # no foreground


@needs_coco
@pytest.mark.data
def test_real_detector_unrelated_coco_images_unchanged():
    files = sorted(COCO.glob("*.jpg"))
    imgs = [cv2.imread(str(f)) for f in files]
    same = [im for im in imgs if im.shape == (480, 640, 3)]
    assert len(same) >= 25
    on = load_detector(DetectorConfig(threads=1), models_dir=MODELS_DIR)
    off = load_detector(DetectorConfig(threads=1, background=False), models_dir=MODELS_DIR)
    on.warm_up(same)
    assert not on.background.ready  # unrelated pictures are not one fixed camera
    for im in same[:3]:
        a, b = on.detect(im, score_threshold=0.05), off.detect(im, score_threshold=0.05)
        assert not on.background_applied
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.classes, b.classes)


@needs_coco
@pytest.mark.data
def test_real_detector_live_walking_person_kept_and_static_poster_demoted():
    """A real person (cut from a COCO picture) walks across a fixed scene while the same
    person stands printed on a poster: after warm-up the walker stays; the poster is dropped
    when the prior may demote, and kept (never lowered) with the default protection."""
    src = cv2.imread(str(COCO / "000000000036.jpg"))  # one large person
    person = cv2.resize(src[60:600, 0:420], (70, 90 * 70 // 78))
    ph, pw = person.shape[:2]
    # The person's own extent inside the pasted patch (from the COCO label, not the patch:
    # the patch has background beside them, which a tight detector box rightly leaves out).
    label = COCO.parent.parent / "labels" / "train2017" / "000000000036.txt"
    _, cx, cy, bw, bh = next(r for r in np.loadtxt(label, ndmin=2) if r[0] == 0)
    sh, sw = src.shape[:2]
    ext = np.array([(cx - bw / 2) * sw, (cy - bh / 2) * sh, (cx + bw / 2) * sw, (cy + bh / 2) * sh])
    scale = np.array([pw / 420, ph / 540, pw / 420, ph / 540])
    ext = (np.clip(ext - [0, 60, 0, 60], 0, [420, 540, 420, 540]) * scale).astype(np.float32)
    scene = cv2.GaussianBlur(
        np.random.default_rng(5).integers(90, 170, (H, W, 3), np.uint8), (0, 0), 8
    )
    poster = (500, 40)
    scene[poster[1] : poster[1] + ph, poster[0] : poster[0] + pw] = person
    det = load_detector(  # the prior may demote: the poster drops out
        DetectorConfig(threads=1, background_warmup_frames=20, background_protect_score=1.0),
        models_dir=MODELS_DIR,
    )
    safe = load_detector(  # the default: the prior only lifts, the poster keeps its score
        DetectorConfig(threads=1, background_warmup_frames=20), models_dir=MODELS_DIR
    )
    off = load_detector(DetectorConfig(threads=1, background=False), models_dir=MODELS_DIR)
    poster_box = ext + np.array([*poster, *poster], np.float32)

    def frame(i):
        img = scene.copy()
        x, y = 20 + 15 * i, 260
        img[y : y + ph, x : x + pw] = person
        return img, ext + np.array([x, y, x, y], np.float32)

    def hits(d, box):
        p = d.boxes[d.classes == PERSON]
        if not len(p):
            return False
        lt, rb = np.maximum(p[:, :2], box[:2]), np.minimum(p[:, 2:], box[2:])
        inter = np.prod(np.clip(rb - lt, 0, None), 1)
        union = np.prod(p[:, 2:] - p[:, :2], 1) + np.prod(box[2:] - box[:2]) - inter
        return bool((inter / union > 0.5).any())

    img, walker = frame(0)
    before = off.detect(img)
    assert hits(before, poster_box) and hits(before, walker)  # the detector sees both
    for i in range(24):
        img, walker = frame(i)
        d, ds = det.detect(img), safe.detect(img)
    assert det.background_applied and det.background.ready and safe.background_applied
    assert hits(d, walker) and hits(ds, walker)
    assert not hits(d, poster_box)
    assert hits(ds, poster_box)  # a still person the detector finds on its own stays
    raw = off.detect(img)
    assert ds.scores.max() >= raw.scores.max()  # lifted, never lowered
    assert "background" in det.last_timings
