"""Track memory shortcuts: reused slots for the same ids, expiry, and the window readers."""

from __future__ import annotations

import numpy as np

from firmware.rules.memory import TrackMemory


def push(mem: TrackMemory, ids: list[int], t: float, x: float = 0.0) -> np.ndarray:
    """One frame: every id at a box offset by ``x`` (and by its id, to tell them apart)."""
    a = np.array(ids, np.int64)
    slots = mem.slots_for(a, t)
    boxes = np.array([[x + i, 0.0, x + i + 10.0, 20.0] for i in ids], np.float64)
    mem.push(slots, boxes, np.ones(len(ids), np.int16), t)
    return slots


def test_same_ids_reuse_slots_and_a_new_id_gets_a_free_slot():
    mem = TrackMemory(history=8)
    s1 = push(mem, [5, 9], 0.0)
    s2 = push(mem, [5, 9], 0.04)
    assert s2.tolist() == s1.tolist()
    s3 = push(mem, [5, 9, 11], 0.08)
    assert s3[:2].tolist() == s1.tolist()
    assert s3[2] not in s1.tolist()
    assert len(mem) == 3


def test_expired_id_coming_back_gets_fresh_state():
    mem = TrackMemory(history=8)
    first = push(mem, [1, 2], 0.0, x=100.0)
    push(mem, [1], 1.0)
    assert mem.expire(1.0, 0.5) == [(int(first[1]), 2)]  # unseen for 1 s
    assert mem.expire(1.0, 0.5) == []
    again = push(mem, [1, 2], 1.04)  # the same ids as the first frame, after an expiry
    assert again[0] == first[0]
    assert mem.hist_n[again[1]] == 1  # nothing left of id 2's old track
    assert mem.first_t[again[1]] == 1.04


def test_expiry_is_not_skipped_when_time_moved_on_without_a_push():
    mem = TrackMemory(history=8)
    push(mem, [3, 4], 0.0)
    assert mem.expire(0.0, 1.0) == []  # both just seen
    assert sorted(tid for _, tid in mem.expire(5.0, 1.0)) == [3, 4]
    assert len(mem) == 0


def test_window_at_and_back_boxes_match_the_full_readers():
    mem = TrackMemory(history=8)
    for f in range(5):
        slots = push(mem, [1, 2], f * 0.04, x=10.0 * f)
    boxes, times = mem.window(slots, 6)  # one frame more than recorded: NaN
    backs = np.array([4, 2, 0])
    b_at, t_at = mem.window_at(slots, backs)
    np.testing.assert_array_equal(b_at, boxes[:, [1, 3, 5]])
    np.testing.assert_array_equal(t_at, times[:, [1, 3, 5]])
    assert np.isnan(boxes[:, 0]).all() and not np.isnan(b_at).any()
    for k in (0, 2, 7):  # 7: clipped to the oldest recorded frame
        np.testing.assert_array_equal(mem.back_boxes(slots, k), mem.back(slots, k)[0])
    assert mem.back_boxes(slots, 7)[0, 0] == 1.0  # x of id 1 in the first frame
