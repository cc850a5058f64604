"""Zones: foot-point membership with inertia, dwell times, lines, and bad zone configs."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.config import ConfigError, parse_text
from firmware.config.schema import LineConfig, ZoneConfig
from firmware.rules.memory import TrackMemory
from firmware.rules.zones import LineSet, ZoneSet, foot_points

SIZE = (400, 300)


def zone(name="shelf", poly=((0.25, 0.5), (0.75, 0.5), (0.75, 1.0), (0.25, 1.0)), **kw):
    return ZoneConfig(name=name, polygon=list(poly), **kw)


def test_contains_uses_pixels_and_even_odd_rule():
    # An L-shaped (concave) zone: the notch must be outside.
    l_shape = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]
    zs = ZoneSet([zone(), zone("L", l_shape)], SIZE, TrackMemory())
    pts = np.array([[200, 200], [50, 50], [350, 50], [350, 250], [10, 140]], float)
    inside = zs.contains(pts)
    assert inside[:, 0].tolist() == [True, False, False, False, False]
    assert inside[:, 1].tolist() == [True, True, False, True, True]


def test_foot_point_is_bottom_centre():
    b = np.array([[10, 20, 30, 120]], float)
    assert foot_points(b).tolist() == [[20.0, 120.0]]


def test_inertia_ignores_flicker_and_times_entry_from_first_frame():
    mem = TrackMemory()
    zs = ZoneSet([zone(inertia_frames=3)], SIZE, mem)
    slots = mem.slots_for(np.array([7]), 0.0)
    inside, outside = np.array([[200.0, 200.0]]), np.array([[20.0, 20.0]])
    seq = [outside, inside, inside, outside, inside, inside, inside, inside]
    member = []
    for f, p in enumerate(seq):
        entered, _ = zs.update(slots, p, f * 0.1)
        member.append(bool(mem.z_member[slots[0], 0]))
    # Two frames inside are not enough; the third consecutive one enters.
    assert member == [False, False, False, False, False, False, True, True]
    assert mem.z_enter_t[slots[0], 0] == pytest.approx(0.4)  # first frame of the run
    assert zs.dwell(slots, 0.7)[0, 0] == pytest.approx(0.3)
    # Leaving also needs three frames outside.
    for f in range(8, 10):
        zs.update(slots, outside, f * 0.1)
        assert mem.z_member[slots[0], 0]
    zs.update(slots, outside, 1.0)
    assert not mem.z_member[slots[0], 0]
    assert mem.z_acc_s[slots[0], 0] == pytest.approx(0.4)  # 0.4 .. 0.8


def test_return_window_keeps_earlier_time():
    mem = TrackMemory()
    zs = ZoneSet([zone(inertia_frames=1)], SIZE, mem, return_window_s=10.0)
    s = mem.slots_for(np.array([1]), 0.0)
    inside, outside = np.array([[200.0, 200.0]]), np.array([[20.0, 20.0]])
    zs.update(s, inside, 0.0)
    zs.update(s, outside, 5.0)  # 5 s visit
    zs.update(s, inside, 8.0)  # back after 3 s: counts
    assert zs.dwell(s, 9.0)[0, 0] == pytest.approx(6.0)
    assert mem.z_visits[s[0], 0] == 2
    zs.update(s, outside, 10.0)
    zs.update(s, inside, 30.0)  # back after 20 s: starts again
    assert zs.dwell(s, 31.0)[0, 0] == pytest.approx(1.0)
    assert mem.z_visits[s[0], 0] == 1


def test_line_crossing_direction():
    ls = LineSet([LineConfig(name="door", points=((0.5, 0.0), (0.5, 1.0)))], SIZE)
    # A->B points down the image; its right (as seen, y down) is towards smaller x.
    prev = np.array([[250.0, 150.0], [150.0, 150.0], [250.0, 150.0], [np.nan, np.nan]])
    cur = np.array([[150.0, 150.0], [250.0, 150.0], [260.0, 150.0], [150.0, 150.0]])
    assert ls.crossings(prev, cur)[:, 0].tolist() == [1, -1, 0, 0]
    # Passing beyond the end of the segment is no crossing.
    ls2 = LineSet([LineConfig(name="short", points=((0.5, 0.0), (0.5, 0.2)))], SIZE)
    assert ls2.crossings(prev[:1], cur[:1])[:, 0].tolist() == [0]


@pytest.mark.parametrize(
    ("zone_toml", "expected"),
    [
        (
            "polygon = [[0.1, 0.1], [1.2, 0.1], [0.5, 0.8]]",
            "zones[0].polygon: point 1 (1.2, 0.1) is outside the image",
        ),
        (
            "polygon = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]",
            "zones[0].polygon: polygon edges cross each other",
        ),
        ("polygon = [[0.1, 0.1], [0.9, 0.9]]", "zones[0].polygon: a zone needs at least 3 points"),
        (
            "polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]\ninertia_frames = 0",
            "zones[0].inertia_frames",
        ),
    ],
)
def test_bad_zones_are_refused_with_the_key(zone_toml, expected):
    with pytest.raises(ConfigError) as e:
        parse_text(f'[[zones]]\nname = "z"\n{zone_toml}\n', "site.toml")
    assert any(p.startswith(expected) for p in e.value.problems), e.value.problems


def test_unknown_rule_and_unknown_zone_reference_are_errors():
    with pytest.raises(ConfigError) as e:
        parse_text("[rules.loitring]\nthreshold_s = 5\n", "site.toml")
    assert e.value.problems[0].startswith("rules.loitring: Extra inputs are not permitted")
    with pytest.raises(ConfigError) as e:
        parse_text('[rules.loitering]\nzones = ["nowhere"]\n', "site.toml")
    assert "unknown zone 'nowhere'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_text('[rules.grab_and_run]\nexits = ["door"]\n', "site.toml")
    assert "rules.grab_and_run.exits names unknown zone or line 'door'" in str(e.value)
