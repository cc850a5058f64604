"""Fight and fall on synthetic tracks: fire for the situation, stay quiet for people walking
side by side, passing each other or chatting, and for someone who just stops or crouches."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.config import validate
from firmware.events.records import EventPhase
from firmware.rules import RuleEngine
from firmware.rules.synthetic import Actor, concat, path, run, still

FPS = 25.0
SIZE = (1280, 720)
H = 100.0


def of_type(events, kind):
    return [e for e in events if e.type == kind]


def brawl(seconds: float, seed: int = 1, amplitude: float = 12.0):
    """Two people a little apart, shoving: erratic positions and box sizes."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    base_a, base_b = np.array([600.0, 500.0]), np.array([660.0, 500.0])
    a = base_a + rng.uniform(-amplitude, amplitude, (n, 2))
    b = base_b + rng.uniform(-amplitude, amplitude, (n, 2))
    ha, hb = H + rng.uniform(-10, 10, n), H + rng.uniform(-10, 10, n)
    wa, wb = 40 + rng.uniform(-8, 8, n), 40 + rng.uniform(-8, 8, n)
    return a, b, ha, hb, wa, wb


def test_fight_fires_once_for_the_pair_after_a_second_of_agitation():
    calm = 2.0
    a, b, ha, hb, wa, wb = brawl(4.0)
    pre_a, pre_b = still((600, 500), calm, FPS), still((660, 500), calm, FPS)
    n_pre = len(pre_a)
    p1 = Actor(
        1,
        concat(pre_a, a),
        height=np.r_[np.full(n_pre, H), ha],
        width=np.r_[np.full(n_pre, 40), wa],
    )
    p2 = Actor(
        2,
        concat(pre_b, b),
        height=np.r_[np.full(n_pre, H), hb],
        width=np.r_[np.full(n_pre, 40), wb],
    )
    events = of_type(run(RuleEngine(validate({}), SIZE, FPS), [p1, p2], FPS), "fight")
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    start = events[0]
    assert start.track_ids == [1, 2]
    # The agitation window fills within a second of the start; then it must hold 1 s.
    assert n_pre <= start.start_frame <= n_pre + 1.2 * FPS
    assert start.frame == pytest.approx(start.start_frame + FPS, abs=1)
    assert start.explain["agitation_sizes_per_s"] >= 1.3  # min_agitation


def jitter(n: int, px: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, px, (n, 2))


def test_two_people_walking_side_by_side_are_not_fighting():
    left = path([(100, 500), (1200, 500)], 1.0 * H, FPS)
    right = left + [0, 40]
    p1 = Actor(1, left + jitter(len(left), 1.5, 2), height=H, width=40)
    p2 = Actor(2, right + jitter(len(left), 1.5, 3), height=H, width=40)
    assert of_type(run(RuleEngine(validate({}), SIZE, FPS), [p1, p2], FPS), "fight") == []


def test_two_people_passing_each_other_are_not_fighting():
    p1 = Actor(1, path([(100, 500), (1200, 500)], 1.2 * H, FPS), height=H, width=40)
    p2 = Actor(2, path([(1200, 520), (100, 520)], 1.2 * H, FPS), height=H, width=40)
    assert of_type(run(RuleEngine(validate({}), SIZE, FPS), [p1, p2], FPS), "fight") == []


def test_two_people_chatting_are_not_fighting():
    n = int(20 * FPS)
    p1 = Actor(1, still((600, 500), 20, FPS) + jitter(n, 2.0, 4), height=H, width=40)
    p2 = Actor(2, still((660, 500), 20, FPS) + jitter(n, 2.0, 5), height=H, width=40)
    assert of_type(run(RuleEngine(validate({}), SIZE, FPS), [p1, p2], FPS), "fight") == []


def test_fall_side_view_fires_after_staying_down():
    walk = path([(100, 500), (500, 500)], 1.0 * H, FPS)
    down = still((520, 500), 6.0, FPS)
    n_w, n_d = len(walk), len(down)
    # Falls within 0.4 s: the box turns from 40x100 to 110x45.
    k = int(0.4 * FPS)
    hh = np.r_[np.full(n_w, H), np.linspace(H, 45, k), np.full(n_d - k, 45.0)]
    ww = np.r_[np.full(n_w, 40.0), np.linspace(40, 110, k), np.full(n_d - k, 110.0)]
    a = Actor(3, concat(walk, down), height=hh, width=ww)
    events = of_type(run(RuleEngine(validate({}), SIZE, FPS), [a], FPS), "fall")
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    start = events[0]
    assert n_w <= start.start_frame <= n_w + k + 0.6 * FPS  # once still (0.5 s window)
    assert start.frame == pytest.approx(start.start_frame + 3 * FPS, abs=1)  # min_down_s
    assert start.explain["cue"] == "wider_than_tall"


def test_fall_overhead_view_fires_on_a_longer_still_silhouette():
    # Seen from above a walking person is a 40x35 blob; lying, their body covers 42x52.
    walk = path([(300, 300), (500, 300)], 40.0, FPS)  # ~1 height/s for 40 px
    down = still((505, 310), 6.0, FPS)
    n_w, n_d = len(walk), len(down)
    a = Actor(
        4,
        concat(walk, down),
        height=np.r_[np.full(n_w, 35.0), np.full(n_d, 52.0)],
        width=np.r_[np.full(n_w, 40.0), np.full(n_d, 42.0)],
    )
    events = of_type(run(RuleEngine(validate({}), SIZE, FPS), [a], FPS), "fall")
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    assert events[0].explain["cue"] == "grown"


@pytest.mark.parametrize(
    ("h_stay", "w_stay"),
    [(H, 36.0), (65.0, 45.0), (70.0, 78.0), (H, 75.0)],
    ids=["standing", "crouching", "bending", "reaching"],
)
def test_standing_crouching_bending_or_reaching_is_not_a_fall(h_stay, w_stay):
    walk = path([(100, 500), (500, 500)], 1.0 * H, FPS)
    stay = still((500, 500), 8.0, FPS)
    n_w, n_s = len(walk), len(stay)
    a = Actor(
        5,
        concat(walk, stay),
        height=np.r_[np.full(n_w, H), np.full(n_s, h_stay)],
        width=np.r_[np.full(n_w, 40.0), np.full(n_s, w_stay)],
    )
    assert of_type(run(RuleEngine(validate({}), SIZE, FPS), [a], FPS), "fall") == []


def test_pose_keypoints_decide_the_posture_when_present():
    from firmware.rules.fall import torso_lying

    kp = np.zeros((3, 17, 3))
    kp[:, :, 2] = 0.9
    kp[0, [5, 6], :2] = [[100, 100], [110, 100]]  # shoulders above hips: upright
    kp[0, [11, 12], :2] = [[100, 160], [110, 160]]
    kp[1, [5, 6], :2] = [[100, 100], [100, 110]]  # shoulders beside hips: lying
    kp[1, [11, 12], :2] = [[160, 100], [160, 110]]
    kp[2, :, 2] = 0.0  # not seen
    out = torso_lying(kp)
    assert out[0] == 0.0 and out[1] == 1.0 and np.isnan(out[2])
    # Torso foreshortened to vertical, but the head below the hips: lying (head to camera).
    kp2 = np.zeros((2, 17, 3))
    kp2[:, :, 2] = 0.9
    kp2[:, [5, 6], :2] = [[100, 150], [110, 150]]
    kp2[:, [11, 12], :2] = [[100, 120], [110, 120]]
    kp2[0, :5, :2] = [105, 170]  # head lowest in the image
    kp2[1, :5, :2] = [105, 90]  # head on top: a person bending forward, not lying
    kp2[1, [5, 6], 1] = 110
    kp2[:, [13, 14], :2] = [[100, 100], [110, 100]]  # knees above the hips
    out2 = torso_lying(kp2)
    assert out2[0] == 1.0 and out2[1] == 0.0
    kp2[0, [13, 14], 1] = 200  # knees below the head: bending over to the floor, not lying
    assert torso_lying(kp2)[0] == 0.0


def test_a_three_person_brawl_is_one_event():
    a, b, ha, hb, wa, wb = brawl(4.0, seed=7)
    c, _, hc, _, wc, _ = brawl(4.0, seed=8)
    c = c + [30, 40]  # a third person joining from the side
    people = [
        Actor(1, a, height=ha, width=wa),
        Actor(2, b, height=hb, width=wb),
        Actor(3, c, height=hc, width=wc),
    ]
    events = of_type(run(RuleEngine(validate({}), SIZE, FPS), people, FPS), "fight")
    assert len({e.event_id for e in events}) == 1
    assert events[-1].phase == EventPhase.END and events[-1].track_ids == [1, 2, 3]


def flailing_arms(feet: np.ndarray, seed: int, amplitude: float) -> np.ndarray:
    """Keypoints for a standing person whose wrists move about (amplitude px per frame)."""
    rng = np.random.default_rng(seed)
    n = len(feet)
    kp = np.zeros((n, 17, 3), np.float32)
    kp[:, :, 0] = feet[:, None, 0]
    kp[:, :, 1] = feet[:, None, 1] - 60
    kp[:, :, 2] = 0.9
    kp[:, [9, 10], :2] += rng.uniform(-amplitude, amplitude, (n, 2, 2))
    return kp


@pytest.mark.parametrize(("amplitude", "fires"), [(30.0, True), (2.0, False)])
def test_fight_uses_wrist_motion_when_the_detector_gives_keypoints(amplitude, fires):
    # Boxes barely move (two people trading blows from where they stand).
    n = int(5 * FPS)
    fa = still((600, 500), 5, FPS) + jitter(n, 0.5, 11)
    fb = still((660, 500), 5, FPS) + jitter(n, 0.5, 12)
    with_pose = [
        Actor(1, fa, height=H, width=40, keypoints=flailing_arms(fa, 1, amplitude)),
        Actor(2, fb, height=H, width=40, keypoints=flailing_arms(fb, 2, amplitude)),
    ]
    events = of_type(run(RuleEngine(validate({}), SIZE, FPS), with_pose, FPS), "fight")
    assert bool(events) is fires
    if fires:
        assert events[0].explain["arms_sizes_per_s"] >= 1.3
    # The same boxes without keypoints are calm.
    boxes_only = [Actor(1, fa, height=H, width=40), Actor(2, fb, height=H, width=40)]
    assert of_type(run(RuleEngine(validate({}), SIZE, FPS), boxes_only, FPS), "fight") == []
