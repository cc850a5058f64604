"""Anonymiser: masks from detections, tracks and memory; fail-closed; static masks; modes."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.config import ConfigError, validate
from firmware.privacy import Anonymiser, PrivacyConfig
from firmware.types import PERSON, Detections, Tracks, TrackState

W, H = 320, 240


def scene(seed: int = 0) -> np.ndarray:
    """A textured image, so any unmasked pixel is distinguishable from a fill."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def dets(
    *boxes: tuple[float, float, float, float], score: float = 0.9, cls: int = PERSON
) -> Detections:
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.full(len(b), score, np.float32), np.full(len(b), cls, np.int16))


def tracks(ids: list[int], boxes: list[tuple], matched: list[bool]) -> Tracks:
    n = len(ids)
    return Tracks(
        np.array(ids, np.int64),
        np.array(boxes, np.float32).reshape(-1, 4),
        np.full(n, 0.9, np.float32),
        np.full(n, PERSON, np.int16),
        np.full(n, TrackState.CONFIRMED, np.int8),
        np.zeros((n, 2), np.float32),
        np.array(matched, bool),
    )


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=2)


def covered(img: np.ndarray, out: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return float(changed(img, out)[y1:y2, x1:x2].mean())


def test_body_mode_masks_person_with_margin_and_leaves_rest() -> None:
    img = scene()
    before = img.copy()
    anon = Anonymiser(PrivacyConfig())
    out = anon.apply(img, dets((100, 50, 140, 150)), None)
    assert np.array_equal(img, before), "input must not be modified"
    assert out is not img
    # the box and its 10 % margin (at least 4 px wide, 10 px tall) are filled
    assert covered(img, out, (96, 40, 144, 160)) > 0.99
    # far from the person nothing changed
    assert covered(img, out, (200, 0, 320, 240)) == 0.0
    assert covered(img, out, (0, 0, 80, 240)) == 0.0


def test_non_person_and_low_score_are_not_masked() -> None:
    img = scene()
    anon = Anonymiser(PrivacyConfig(min_score=0.3))
    out = anon.apply(
        img,
        Detections(
            np.array([[10, 10, 50, 50], [200, 100, 250, 200]], np.float32),
            np.array([0.9, 0.2], np.float32),
            np.array([27, PERSON], np.int16),
        ),
        None,
    )
    assert not changed(img, out).any()


def test_low_confidence_masked_unless_frame_sized() -> None:
    img = scene()
    anon = Anonymiser(PrivacyConfig(min_score=0.05, confident_score=0.35, low_score_max_area=0.1))
    small, huge = (200, 100, 230, 160), (0, 0, 300, 230)  # 2 % and 90 % of the frame
    out = anon.apply(
        img,
        Detections(
            np.array([small, huge, (10, 10, 40, 70)], np.float32),
            np.array([0.08, 0.2, 0.01], np.float32),
            np.full(3, PERSON, np.int16),
        ),
        None,
    )
    assert covered(img, out, small) == 1.0  # a weak but person-sized guess is masked
    assert covered(img, out, (10, 10, 40, 70)) == 0.0  # below min_score
    assert not anon.last_full and changed(img, out).mean() < 0.1  # the frame-sized guess is not
    out = anon.apply(img, dets(huge, score=0.5), None)  # ...unless it is confident
    assert covered(img, out, huge) == 1.0


def test_weak_candidates_need_foreground_or_a_track() -> None:
    """Below confident_score a candidate is masked only where the scene model sees something
    under it or a track covers it; at the operating score it is masked regardless (a person
    who stood still long enough to become background)."""
    img = scene()
    cfg = PrivacyConfig(min_score=0.05, confident_score=0.2, weak_foreground=0.1)
    chair, walker, still = (20, 20, 50, 80), (200, 100, 230, 160), (120, 60, 150, 120)
    d = Detections(
        np.array([chair, walker, still], np.float32),
        np.array([0.1, 0.1, 0.5], np.float32),
        np.full(3, PERSON, np.int16),
    )
    fg = np.zeros((60, 80), bool)  # quarter resolution: the walker's cells are foreground
    fg[25:40, 50:58] = True
    out = Anonymiser(cfg).apply(img, d, None, foreground=fg)
    assert covered(img, out, walker) == 1.0 and covered(img, out, still) == 1.0
    assert covered(img, out, chair) == 0.0  # static furniture the detector half-likes
    tr = tracks([1], [(22, 25, 52, 85)], [True])  # a track overlapping the weak box
    out = Anonymiser(cfg).apply(img, d, tr, foreground=fg)
    assert covered(img, out, chair) == 1.0  # the weak box too, not only the track's
    out = Anonymiser(cfg).apply(img, d, None, foreground=None)
    assert covered(img, out, chair) == 1.0  # no scene model yet: every weak one counts


def test_weak_candidate_on_a_remembered_person_keeps_them_masked() -> None:
    """A tracked person sits down: the track is lost and the detector only half-sees them,
    with no foreground left under them; the memory is renewed while it still sees them."""
    img = scene()
    cfg = PrivacyConfig(persist_frames=5, detection_persist_frames=0, persist_growth=0.0)
    seat = (120, 60, 150, 120)
    weak = Detections(np.array([seat], np.float32), np.array([0.1], np.float32),
                      np.array([PERSON], np.int16))  # fmt: skip
    empty = np.zeros((60, 80), bool)
    for renewing in (True, False):
        anon = Anonymiser(cfg)
        anon.apply(img, dets(seat), tracks([7], [seat], [True]), foreground=empty)
        for k in range(30):  # 6x persist_frames
            d = weak if renewing else Detections.empty()
            out = anon.apply(img, d, None, foreground=empty)
            if renewing:
                assert covered(img, out, seat) == 1.0, f"frame {k}: unmasked"
        assert renewing or covered(img, out, seat) == 0.0  # without it the memory expires


def test_track_mask_persists_after_detection_lost_then_expires() -> None:
    cfg = PrivacyConfig(persist_frames=5, detection_persist_frames=0)
    anon = Anonymiser(cfg)
    img = scene()
    box = (100, 50, 140, 150)
    out = anon.apply(img, dets(box), tracks([7], [box], [True]))
    assert covered(img, out, box) == 1.0
    # detector misses the person, tracker dropped the track too: memory keeps masking
    for _ in range(5):
        out = anon.apply(img, Detections.empty(), Tracks.empty())
        assert covered(img, out, box) == 1.0
    out = anon.apply(img, Detections.empty(), Tracks.empty())
    assert covered(img, out, box) == 0.0


def test_persisting_mask_grows_with_age() -> None:
    anon = Anonymiser(PrivacyConfig(persist_frames=10, persist_growth=0.05, margin=0.0))
    img = scene()
    box = (100, 50, 140, 150)
    anon.apply(img, dets(box), tracks([1], [box], [True]))
    sizes = []
    for _ in range(3):
        anon.apply(img, Detections.empty(), Tracks.empty())
        x1, y1, x2, y2 = anon.last_regions[0]
        sizes.append((x2 - x1) * (y2 - y1))
    assert sizes[0] < sizes[1] < sizes[2]


def test_coasting_track_box_is_masked() -> None:
    anon = Anonymiser(PrivacyConfig())
    img = scene()
    out = anon.apply(img, Detections.empty(), tracks([3], [(20, 20, 60, 120)], [False]))
    assert covered(img, out, (20, 20, 60, 120)) == 1.0


def test_untracked_detection_persists_a_few_frames() -> None:
    anon = Anonymiser(PrivacyConfig(detection_persist_frames=2))
    img = scene()
    box = (200, 100, 240, 200)
    anon.apply(img, dets(box), None)
    for _ in range(2):
        out = anon.apply(img, Detections.empty(), None)
        assert covered(img, out, box) == 1.0
    out = anon.apply(img, Detections.empty(), None)
    assert covered(img, out, box) == 0.0


def test_fail_closed_until_recovered() -> None:
    anon = Anonymiser(PrivacyConfig(recovery_frames=3))
    img = scene()
    box = (100, 50, 140, 150)
    out = anon.apply(img, dets(box), None, inference_ok=False)
    assert changed(img, out).all(), "whole frame masked while inference fails"
    assert anon.last_full
    # inference works again, but the frame stays masked until 3 good frames in a row
    for _ in range(2):
        out = anon.apply(img, dets(box), None, inference_ok=True)
        assert changed(img, out).all()
    out = anon.apply(img, dets(box), None, inference_ok=True)
    assert not anon.last_full
    assert covered(img, out, (250, 0, 320, 240)) == 0.0
    assert covered(img, out, box) == 1.0
    assert anon.full_frames == 3


def test_stall_without_detections_masks_whole_frame() -> None:
    anon = Anonymiser(PrivacyConfig(max_frames_without_inference=4, recovery_frames=1))
    img = scene()
    for _ in range(4):  # inference skipped on a few frames (every_nth_frame): normal
        out = anon.apply(img, None, Tracks.empty())
        assert not changed(img, out).any()
    out = anon.apply(img, None, Tracks.empty())  # the 5th: stalled
    assert changed(img, out).all()
    out = anon.apply(img, Detections.empty(), Tracks.empty())
    assert not changed(img, out).any()


def test_static_masks_first_and_before_inference() -> None:
    cfg = PrivacyConfig(
        static_masks=[{"name": "pinpad", "polygon": [(0, 0), (0.25, 0), (0.25, 0.25), (0, 0.25)]}]
    )
    anon = Anonymiser(cfg)
    img = scene()
    pre = anon.mask_static(img)
    assert changed(img, pre)[:55, :75].all()
    assert not changed(img, pre)[70:, 90:].any()
    out = anon.apply(img, Detections.empty(), None, inference_ok=True)
    assert (out[:55, :75] == cfg.color).all()
    assert anon.coverage_mask((W, H))[:55, :75].all()


def test_head_mode_upright_box_masks_top_only() -> None:
    anon = Anonymiser(PrivacyConfig(mode="head", margin=0.1, margin_px=2))
    img = scene()
    out = anon.apply(img, dets((100, 40, 140, 200)), None)  # 40x160: upright
    assert covered(img, out, (100, 40, 140, 90)) == 1.0  # top 35 % = 56 px
    assert covered(img, out, (100, 130, 140, 200)) == 0.0  # legs visible


def test_head_mode_overhead_box_masked_whole() -> None:
    anon = Anonymiser(PrivacyConfig(mode="head"))
    img = scene()
    box = (100, 100, 150, 130)  # wider than tall: overhead view, head could be anywhere
    out = anon.apply(img, dets(box), None)
    assert covered(img, out, box) == 1.0


def test_head_mode_uses_keypoints() -> None:
    anon = Anonymiser(PrivacyConfig(mode="head", margin=0.0, margin_px=0))
    img = scene()
    d = dets((100, 100, 160, 130))  # wide box, but keypoints say where the head is
    kp = np.full((1, 17, 3), np.nan, np.float32)
    kp[0, 0] = (150, 110, 0.9)
    kp[0, 1] = (152, 108, 0.9)
    kp[0, 2] = (148, 108, 0.9)
    d.keypoints = kp
    out = anon.apply(img, d, None)
    assert covered(img, out, (144, 104, 156, 116)) == 1.0


@pytest.mark.parametrize("fill", ["noise", "pixelate", "solid"])
def test_fills_are_irreversible(fill: str) -> None:
    anon = Anonymiser(PrivacyConfig(fill=fill, margin=0, margin_px=0), seed=1)
    img = scene()
    box = (64, 64, 160, 192)
    out = anon.apply(img, dets(box), None)
    region = out[64:192, 64:160].astype(np.float32)
    orig = img[64:192, 64:160].astype(np.float32)
    # nothing of the original texture survives: no correlation with the original pixels
    corr = np.corrcoef(region.ravel(), orig.ravel())[0, 1] if region.std() > 0 else 0.0
    assert abs(corr) < 0.2
    if fill == "pixelate":
        # 96 px wide region -> cells of 32 px: at most ~3x4 distinct cells before noise
        cells = region[::32, ::32]
        assert cells.shape[:2] == (4, 3)


def test_silhouette_mode_flat_shape() -> None:
    anon = Anonymiser(PrivacyConfig(mode="silhouette"))
    bg = np.full((H, W, 3), 200, np.uint8)
    for _ in range(3):
        anon.apply(bg, Detections.empty(), None)
    img = bg.copy()
    img[60:180, 110:130] = 20  # a "person" against the background
    out = anon.apply(img, dets((100, 50, 140, 190)), None)
    region = out[50:190, 100:140]
    assert len(np.unique(region.reshape(-1, 3), axis=0)) == 2  # two flat colours only
    assert (out[100, 120] != out[55, 102]).any()  # the shape is visible


def test_scale_from_lores_boxes() -> None:
    anon = Anonymiser(PrivacyConfig())
    img = scene()
    out = anon.apply(img, dets((50, 25, 70, 75)), None, scale_from=(W // 2, H // 2))
    assert covered(img, out, (100, 50, 140, 150)) == 1.0


def test_config_refuses_bad_static_mask() -> None:
    with pytest.raises(ConfigError, match=r"privacy.static_masks\[0\].polygon"):
        validate(
            {"privacy": {"static_masks": [{"name": "a", "polygon": [(0, 0), (2, 0), (0, 1)]}]}}
        )
    with pytest.raises(ConfigError, match="privacy.mode"):
        validate({"privacy": {"mode": "blur"}})


def test_face_boxes_masked_with_generous_margin() -> None:
    anon = Anonymiser(PrivacyConfig(mode="head", margin=0.1, persist_growth=0.02))
    img = scene()
    out = anon.apply(img, Detections.empty(), None, faces=np.array([[200, 40, 220, 64]]))
    assert covered(img, out, (194, 33, 226, 71)) == 1.0  # 10 % + 10 x 2 % of the face each side
    assert covered(img, out, (0, 100, 320, 240)) == 0.0
