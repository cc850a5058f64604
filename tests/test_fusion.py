"""Hub fusion (tools/hub/fusion.py): hand-over, splitting swapped local tracks, conservative
merges, clock offsets, late messages, uncalibrated cameras and bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from tools.hub.fusion import Fusion, FusionConfig, Observation

FPS = 5.0


def _feed(fusion: Fusion, frames: list[list[Observation]]) -> dict[tuple[str, int, int], int]:
    """Feed unit-frames frame by frame, stepping at each; (unit, frame, local id) -> global id."""
    out = {}
    for k, batch in enumerate(frames):
        for obs in batch:
            fusion.add(obs)
        for a in fusion.step(k / FPS + 0.5):
            out[(a.unit, a.frame, a.local_id)] = a.global_id
    for a in fusion.flush():
        out[(a.unit, a.frame, a.local_id)] = a.global_id
    return out


def _obs(unit: str, k: int, people: dict[int, tuple[float, float]], offset: float = 0.0):
    ids = np.array(list(people), np.int64)
    xy = np.array(list(people.values()), float).reshape(-1, 2)
    return Observation(unit, k / FPS + offset, k + 1, ids, xy)


def test_one_person_keeps_one_id_across_a_hand_over():
    # walks x = 0 .. 12 m at 1.2 m/s; camera a sees x < 7, camera b sees x > 5
    frames = []
    rng = np.random.default_rng(1)
    for k in range(50):
        x = 1.2 * k / FPS
        batch = []
        if x < 7:
            batch.append(_obs("a", k, {3: (x + rng.normal(0, 0.1), 2.0)}))
        if x > 5:
            batch.append(_obs("b", k, {8: (x + 0.3 + rng.normal(0, 0.1), 2.2)}))
        frames.append(batch)
    ids = _feed(Fusion(), frames)
    assert len(set(ids.values())) == 1, ids


def test_a_swap_in_one_camera_is_split_by_the_others():
    # two people walking apart along y; camera "s" swaps their local ids at frame 20
    frames = []
    for k in range(40):
        p1, p2 = (k * 0.2, 0.0), (k * 0.2, 3.0)
        swapped = k >= 20
        frames.append(
            [
                _obs("a", k, {1: p1, 2: p2}),
                _obs("b", k, {5: (p1[0] + 0.2, p1[1]), 6: (p2[0] - 0.2, p2[1])}),
                _obs("s", k, {7: p2, 8: p1} if swapped else {7: p1, 8: p2}),
            ]
        )
    ids = _feed(Fusion(), frames)
    person1 = ids[("a", 30, 1)]
    person2 = ids[("a", 30, 2)]
    assert person1 != person2
    assert ids[("s", 10, 7)] == person1  # before the swap, local 7 is person 1
    assert ids[("s", 30, 7)] == person2  # after it, local 7 follows person 2: split
    assert ids[("s", 30, 8)] == person1
    assert ids[("b", 30, 5)] == person1 and ids[("b", 30, 6)] == person2


def test_two_people_side_by_side_are_never_merged():
    # 0.5 m apart for 20 s; camera a sees both as two people, camera b sees one of them
    frames = [
        [
            _obs("a", k, {1: (0.1 * k, 0.0), 2: (0.1 * k, 0.5)}),
            _obs("b", k, {4: (0.1 * k, 0.5)}),
        ]
        for k in range(100)
    ]
    ids = _feed(Fusion(), frames)
    assert ids[("a", 90, 1)] != ids[("a", 90, 2)]
    assert ids[("b", 90, 4)] == ids[("a", 90, 2)]


def test_clock_offset_and_late_out_of_order_messages():
    # unit b's clock is 0.5 s behind; its messages arrive a second late, five at a time, newest first
    fusion = Fusion()
    a_frames = [_obs("a", k, {1: (1.0 * k / FPS, 0.0), 2: (5.0, 1.0 * k / FPS)}) for k in range(60)]
    b_frames = [
        _obs("b", k, {3: (1.0 * k / FPS + 0.2, 0.1), 4: (5.1, 1.0 * k / FPS)}, offset=-0.5)
        for k in range(60)
    ]
    ids = {}
    for k in range(60):
        fusion.add(a_frames[k])
        if k % 5 == 4:
            for j in range(k, k - 5, -1):
                fusion.add(b_frames[j])
        for a in fusion.step(k / FPS):
            ids[(a.unit, a.frame, a.local_id)] = a.global_id
    for a in fusion.flush():
        ids[(a.unit, a.frame, a.local_id)] = a.global_id
    assert fusion.late > 0
    late = [(u, f, i) for (u, f, i) in ids if f > 20]
    same = sum(ids[("b", f, 3)] == ids[("a", f, 1)] for u, f, i in late if u == "b" and i == 3)
    assert same / sum(1 for u, f, i in late if u == "b" and i == 3) > 0.9
    assert ids[("a", 50, 1)] != ids[("a", 50, 2)]


def test_an_uncalibrated_camera_keeps_its_own_ids():
    frames = [
        [
            _obs("a", k, {1: (0.1 * k, 0.0)}),
            Observation("n", k / FPS, k + 1, np.array([7, 9]), np.full((2, 2), np.nan)),
        ]
        for k in range(20)
    ]
    ids = _feed(Fusion(), frames)
    g7, g9, ga = ids[("n", 10, 7)], ids[("n", 10, 9)], ids[("a", 10, 1)]
    assert len({g7, g9, ga}) == 3
    assert all(ids[("n", f, 7)] == g7 for f in range(1, 21))


def test_memory_stays_bounded_as_people_come_and_go():
    cfg = FusionConfig()
    fusion = Fusion(cfg)
    sizes = []
    for k in range(3000):  # 10 minutes at 5 Hz; a new person every 10 s, each stays 20 s
        people = {p: ((k - 50 * p) * 0.1, float(p % 7)) for p in range(k // 50 - 1, k // 50 + 1)}
        people = {p: xy for p, xy in people.items() if p >= 0}
        fusion.add(_obs("a", k, people))
        fusion.step(k / FPS + 1)
        sizes.append(sum(fusion.size))
    assert max(sizes[1500:]) <= max(sizes[:1500]) + 2
    assert fusion.size[0] <= 2 + cfg.max_lost_s / 10 + 2


def test_mismatched_observation_is_refused():
    with pytest.raises(ValueError, match="unit x frame 3: 2 ids but 1 points"):
        Fusion().add(Observation("x", 0.0, 3, np.array([1, 2]), np.zeros((1, 2))))


def test_tracks_and_store_tracks_messages_meet_the_contract():
    from firmware.link.tracks import TracksThrottle, encode_tracks
    from tools.hub.contract import Validator

    v = Validator()
    calibrated = encode_tracks(
        time_s=12.5,
        frame=40,
        session=3,
        ids=np.array([4, 9]),
        boxes=np.array([[0.1, 0.2, 0.2, 0.6], [0.5, 0.1, 0.6, 0.5]]),
        states=["confirmed", "tentative"],
        floor_xy=np.array([[1.234, 5.0], [np.nan, np.nan]]),
        floor_v=np.array([[0.5, -0.25], [0.0, 0.0]]),
    )
    assert v.check("tracks", calibrated) == []
    import cbor2

    msg = cbor2.loads(calibrated)
    assert msg["tracks"][0]["floor"] == [1.23, 5.0] and "foot" not in msg["tracks"][0]
    assert msg["tracks"][1]["foot"] == [0.55, 0.5] and "floor" not in msg["tracks"][1]
    bad = cbor2.dumps({**msg, "tracks": [{"id": 1, "box": [0, 0, 1], "state": "confirmed"}]})
    assert v.check("tracks", bad)
    fusion = Fusion()
    _feed(
        fusion,
        [[_obs("a", k, {1: (0.1 * k, 0.0)}), _obs("b", k, {2: (0.1 * k, 0.1)})] for k in range(10)],
    )
    store = fusion.store_tracks()
    assert v.check("store/tracks", store) == []
    (track,) = cbor2.loads(store)["tracks"]
    assert {u["unit"] for u in track["units"]} == {"a", "b"}
    throttle = TracksThrottle(5.0)
    sent = [throttle.due(k / 15) for k in range(150)]  # 10 s of a 15 fps camera
    assert sum(sent) == 50


def test_a_person_two_cameras_first_see_at_one_moment_gets_one_id_at_once():
    # both units' first frames carry the newcomer; the tick's joint matching must not start two
    frames = [
        [_obs("a", k, {1: (0.2 * k, 0.0)}), _obs("b", k, {6: (0.2 * k + 0.3, 0.2)})]
        for k in range(10)
    ]
    ids = _feed(Fusion(), frames)
    assert ids[("a", 1, 1)] == ids[("b", 1, 6)]
    assert len(set(ids.values())) == 1


def test_a_unit_whose_tracker_swaps_mid_crossing_is_split_where_the_other_units_disagree():
    # two people cross paths (x from opposite ends); unit "s" keeps local 7 on the wrong person
    # after they meet (identity switch), units a and b keep them apart: 7 must change global id
    frames = []
    for k in range(60):
        x1, x2 = 0.1 * k, 6.0 - 0.1 * k
        p1, p2 = (x1, 0.0 + 0.02 * k), (x2, 1.2 - 0.02 * k)
        s_ids = {7: p1, 8: p2} if k < 30 else {7: p2, 8: p1}
        frames.append(
            [
                _obs("a", k, {1: p1, 2: p2}),
                _obs("b", k, {3: (p1[0] + 0.2, p1[1]), 4: (p2[0] - 0.2, p2[1])}),
                _obs("s", k, s_ids),
            ]
        )
    ids = _feed(Fusion(), frames)
    assert ids[("s", 10, 7)] == ids[("a", 10, 1)]
    assert ids[("s", 55, 7)] == ids[("a", 55, 2)] != ids[("a", 55, 1)]
    assert ids[("s", 55, 8)] == ids[("a", 55, 1)]
