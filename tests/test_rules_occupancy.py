"""Left object, crowding, after-hours intrusion (schedule and hub arm/disarm) and footfall
on synthetic tracks."""

from __future__ import annotations

from datetime import datetime

import pytest

from firmware.config import validate
from firmware.events.records import EventPhase
from firmware.rules import RuleEngine
from firmware.rules.occupancy import store_closed
from firmware.rules.synthetic import Actor, concat, path, run, still
from firmware.types import BACKPACK

FPS = 10.0
SIZE = (1280, 720)
H = 100.0


def of_type(events, kind):
    return [e for e in events if e.type == kind]


def owner_and_bag(stay_s: float, leave: bool, pick_up: bool = False):
    """A person walks in carrying a bag, puts it down, stays, then leaves (with it or not)."""
    spot = (600.0, 500.0)
    walk_in = path([(100, 500), spot], H, FPS)
    stay = still(spot, stay_s, FPS)
    walk_out = path([spot, (1250, 500)], H, FPS)[1:]
    person = Actor(
        1, concat(walk_in, stay, walk_out if leave else still(spot, 8.0, FPS)), height=H, width=40
    )
    bag_spot = (630.0, 500.0)
    carried = walk_in + [30, 0]
    if pick_up:
        bag_path = concat(carried, still(bag_spot, stay_s, FPS), walk_out + [30, 0])
    elif leave:
        bag_path = concat(carried, still(bag_spot, stay_s + len(walk_out) / FPS + 10, FPS))
    else:  # the owner stays by it until the end of the clip
        bag_path = concat(carried, still(bag_spot, stay_s + 8.0, FPS))
    bag = Actor(50, bag_path, height=30, width=25, cls=BACKPACK)
    return person, bag, len(walk_in) + len(stay)


def test_left_object_fires_once_the_owner_has_gone():
    person, bag, left_at = owner_and_bag(stay_s=5.0, leave=True)
    events = of_type(run(RuleEngine(validate({}), SIZE, FPS), [person, bag], FPS), "left_object")
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    start = events[0]
    assert start.track_ids == [1, 50] and start.explain["owner_id"] == 1
    # The owner is out of reach (1.5 heights) about 1.5 s after leaving; then 3 s alone.
    gone = left_at + int(1.2 * FPS)
    assert gone <= start.start_frame <= gone + FPS
    assert start.frame == pytest.approx(start.start_frame + 3 * FPS, abs=1)


@pytest.mark.parametrize("pick_up", [False, True])
def test_left_object_quiet_while_the_owner_stays_or_takes_it(pick_up):
    person, bag, _ = owner_and_bag(stay_s=20.0, leave=pick_up, pick_up=pick_up)
    events = run(RuleEngine(validate({}), SIZE, FPS), [person, bag], FPS)
    assert of_type(events, "left_object") == []


ZONE = [(0.2, 0.3), (0.8, 0.3), (0.8, 0.9), (0.2, 0.9)]  # x 256..1024, y 216..648


def group(n: int, seconds: float) -> list[Actor]:
    return [
        Actor(
            10 + i,
            concat(
                path([(100, 400 + 30 * i), (400 + 80 * i, 400 + 30 * i)], H, FPS),
                still((400 + 80 * i, 400 + 30 * i), seconds, FPS),
            ),
            height=H,
            width=40,
        )
        for i in range(n)
    ]


def test_crowding_fires_after_min_duration_with_the_people():
    cfg = validate(
        {
            "zones": [{"name": "entrance_hall", "polygon": ZONE}],
            "rules": {"crowding": {"min_people": 4, "min_duration_s": 10}},
        }
    )
    events = of_type(run(RuleEngine(cfg, SIZE, FPS), group(5, 15.0), FPS), "crowding")
    assert [e.phase for e in events][0] == EventPhase.START and events[-1].phase == EventPhase.END
    start = events[0]
    assert start.zone == "entrance_hall" and start.explain["people"] >= 4
    assert start.frame - start.start_frame == pytest.approx(10 * FPS, abs=1)
    assert len({e.event_id for e in events}) == 1
    quiet = of_type(run(RuleEngine(cfg, SIZE, FPS), group(3, 15.0), FPS), "crowding")
    assert quiet == []


def site(**schedule):
    return validate(
        {
            "site": {"timezone": "Europe/Paris"},
            "zones": [
                {"name": "stock", "purpose": "staff_only", "polygon": ZONE},
                {"name": "floor", "polygon": [(0.0, 0.0), (0.1, 0.0), (0.1, 0.1)], "armed": False},
            ],
            "schedule": schedule,
        }
    )


def intruder():
    return [
        Actor(
            1,
            concat(path([(100, 400), (600, 400)], H, FPS), still((600, 400), 5, FPS)),
            height=H,
            width=40,
        )
    ]


HOURS = {"open_time": "08:00", "close_time": "20:00"}


def test_intrusion_when_the_schedule_says_closed():
    night = RuleEngine(site(**HOURS), SIZE, FPS, wall_clock_start=datetime(2026, 1, 5, 22, 30))
    events = of_type(run(night, intruder(), FPS), "intrusion")
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    assert events[0].zone == "stock" and events[0].track_ids == [1]
    assert (
        events[0].explain["local_time"] == "2026-01-05 22:3" + events[0].explain["local_time"][-1]
    )
    day = RuleEngine(site(**HOURS), SIZE, FPS, wall_clock_start=datetime(2026, 1, 5, 12, 0))
    assert of_type(run(day, intruder(), FPS), "intrusion") == []


def test_hub_arm_and_disarm_override_the_schedule():
    day = RuleEngine(site(**HOURS), SIZE, FPS, wall_clock_start=datetime(2026, 1, 5, 12, 0))
    day.set_armed(None, True)
    assert len(of_type(run(day, intruder(), FPS), "intrusion")) == 2
    night = RuleEngine(site(**HOURS), SIZE, FPS, wall_clock_start=datetime(2026, 1, 5, 23, 0))
    night.set_armed(None, False)
    assert of_type(run(night, intruder(), FPS), "intrusion") == []
    zone_off = RuleEngine(site(**HOURS), SIZE, FPS, wall_clock_start=datetime(2026, 1, 5, 23, 0))
    zone_off.set_armed("stock", False)
    assert of_type(run(zone_off, intruder(), FPS), "intrusion") == []
    with pytest.raises(ValueError, match="unknown zone 'attic'"):
        zone_off.set_armed("attic", True)


def test_without_opening_hours_the_store_counts_as_open():
    engine = RuleEngine(site(), SIZE, FPS, wall_clock_start=datetime(2026, 1, 5, 3, 0))
    assert of_type(run(engine, intruder(), FPS), "intrusion") == []


@pytest.mark.parametrize(
    ("when", "closed"),
    [
        (datetime(2026, 1, 5, 7, 59), True),
        (datetime(2026, 1, 5, 8, 0), False),
        (datetime(2026, 1, 5, 19, 59), False),
        (datetime(2026, 1, 5, 20, 0), True),
        (datetime(2026, 1, 11, 12, 0), True),  # a Sunday, not an open day
    ],
)
def test_store_closed(when, closed):
    sched = validate(
        {"schedule": {**HOURS, "open_days": ["mon", "tue", "wed", "thu", "fri", "sat"]}}
    ).schedule
    assert store_closed(sched, when) is closed


def test_schedule_past_midnight():
    sched = validate({"schedule": {"open_time": "18:00", "close_time": "02:00"}}).schedule
    assert not store_closed(sched, datetime(2026, 1, 5, 1, 0))
    assert store_closed(sched, datetime(2026, 1, 5, 3, 0))
    assert not store_closed(sched, datetime(2026, 1, 5, 19, 0))


def test_bad_schedule_is_refused():
    from firmware.config import ConfigError

    with pytest.raises(ConfigError, match="schedule.open_time: '25:00' is not a time of day"):
        validate({"schedule": {"open_time": "25:00", "close_time": "20:00"}}, "site.toml")
    with pytest.raises(ConfigError, match="give both open_time and close_time"):
        validate({"schedule": {"open_time": "08:00"}}, "site.toml")


def test_footfall_counts_crossings_by_direction_and_summarises_per_interval():
    cfg = validate(
        {
            "zones": [{"name": "till", "purpose": "till", "polygon": ZONE}],
            "lines": [
                {"name": "door", "points": [(0.1, 0.0), (0.1, 1.0)]}
            ],  # x = 128, A->B downwards
            "rules": {"footfall": {"interval_s": 10}},
        }
    )
    # Two walk in (right to left across x=128: from the left of A->B... see below), one out.
    ins = [
        Actor(i, path([(300, 400 + 40 * i), (50, 400 + 40 * i)], H, FPS), height=H, width=40)
        for i in (1, 2)
    ]
    out = Actor(3, path([(50, 300), (600, 300)], H, FPS), height=H, width=40)
    events = run(RuleEngine(cfg, SIZE, FPS), [*ins, out], FPS)
    crossings = of_type(events, "line_crossing")
    assert sorted((e.track_ids[0], e.explain["direction"]) for e in crossings) == [
        (1, "in"),
        (2, "in"),
        (3, "out"),
    ]
    assert all(e.phase == EventPhase.INSTANT and e.zone == "door" for e in crossings)
    summary = of_type(events, "footfall")
    assert sum(s.explain["lines"]["door"]["in"] for s in summary) == 2
    assert sum(s.explain["lines"]["door"]["out"] for s in summary) == 1
    assert max(s.explain["zones"]["till"]["max_people"] for s in summary) >= 1
    visits = sum(s.explain["zones"]["till"]["visits_ended"] for s in summary)
    assert visits == 2  # 1 and 2 left the till zone; 3 is still in it at the end


def test_a_bag_never_seen_with_anyone_needs_require_owner_off():
    lone = Actor(60, still((900.0, 500.0), 15.0, FPS), height=30, width=25, cls=BACKPACK)
    assert of_type(run(RuleEngine(validate({}), SIZE, FPS), [lone], FPS), "left_object") == []
    strict = validate({"rules": {"left_object": {"require_owner": False}}})
    events = of_type(run(RuleEngine(strict, SIZE, FPS), [lone], FPS), "left_object")
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    assert events[0].explain["owner_id"] is None and events[0].track_ids == [60]


def test_crowding_reports_the_right_zone_when_zones_are_listed_out_of_order():
    """A rule naming every zone, in another order than the config, still counts each zone's
    own people (the crowd stands in ``hall``; ``corner`` stays empty)."""
    cfg = validate(
        {
            "zones": [
                {"name": "hall", "polygon": ZONE},
                {"name": "corner", "polygon": [(0.0, 0.0), (0.1, 0.0), (0.1, 0.1)]},
            ],
            "rules": {
                "crowding": {"min_people": 4, "min_duration_s": 10, "zones": ["corner", "hall"]}
            },
        }
    )
    events = of_type(run(RuleEngine(cfg, SIZE, FPS), group(5, 15.0), FPS), "crowding")
    assert events and {e.zone for e in events} == {"hall"}
