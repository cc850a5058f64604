"""Running and grab-and-run on synthetic tracks: fire at the right time, quiet for a brisk
walk and for a slow exit after dwelling at a shelf."""

from __future__ import annotations

import pytest

from firmware.config import validate
from firmware.events.records import EventPhase, Severity
from firmware.rules import RuleEngine
from firmware.rules.synthetic import Actor, concat, path, run, still

FPS = 25.0
SIZE = (1280, 720)
H = 100.0  # person height in pixels


def of_type(events, kind):
    return [e for e in events if e.type == kind]


def test_running_fires_soon_after_the_run_starts_and_ends_after_it():
    walk = path([(50, 400), (200, 400)], 1.0 * H, FPS)  # 1.5 s walk
    sprint = path([(200, 400), (1200, 400)], 3.0 * H, FPS)  # ~3.3 s at 3 heights/s
    a = Actor(1, concat(walk, sprint[1:], still((1200, 400), 2.0, FPS)), height=H, width=40)
    events = of_type(run(RuleEngine(validate({}), SIZE, FPS), [a], FPS), "running")
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    start, end = events
    run_start = len(walk)
    # Onset when the speed window is mostly past the start of the run; the event is sent
    # once the speed has held min_duration_s (0.6 s).
    assert run_start <= start.start_frame <= run_start + 0.6 * FPS
    assert start.frame == pytest.approx(start.start_frame + 0.6 * FPS, abs=1)
    assert start.explain["speed_heights_per_s"] == pytest.approx(3.0, rel=0.1)
    assert start.explain["min_speed"] == 2.5 and start.severity == Severity.WARN
    stop = run_start + len(sprint) - 1
    assert stop - 2 <= end.end_frame <= stop + 0.6 * FPS


@pytest.mark.parametrize("heights_per_s", [0.8, 1.2, 2.0])
def test_walking_briskly_or_jogging_is_not_running(heights_per_s):
    a = Actor(1, path([(50, 400), (1200, 400)], heights_per_s * H, FPS), height=H, width=40)
    assert of_type(run(RuleEngine(validate({}), SIZE, FPS), [a], FPS), "running") == []


def test_speed_is_in_heights_so_a_small_far_person_runs_too():
    # 30 px tall person moving 90 px/s: 3 heights/s, a run, though slow in pixels.
    a = Actor(1, path([(50, 200), (600, 200)], 90.0, FPS), height=30, width=12)
    events = of_type(run(RuleEngine(validate({}), SIZE, FPS), [a], FPS), "running")
    assert len(events) == 2


def test_person_entering_at_the_border_is_not_a_run():
    # The box grows from the image edge: its centre moves fast, the person does not.
    a = Actor(
        1, still((640, 719.5), 3.0, FPS), height=[min(H, 5 + 8 * i) for i in range(75)], width=40
    )
    assert of_type(run(RuleEngine(validate({}), SIZE, FPS), [a], FPS), "running") == []


SHELF = [(0.1, 0.4), (0.3, 0.4), (0.3, 0.8), (0.1, 0.8)]  # x 128..384, y 288..576
EXIT = [(0.85, 0.3), (1.0, 0.3), (1.0, 0.9), (0.85, 0.9)]


def store(**rule):
    return validate(
        {
            "zones": [
                {"name": "spirits", "purpose": "high_value", "polygon": SHELF},
                {"name": "door", "purpose": "exit", "polygon": EXIT},
            ],
            "rules": {"grab_and_run": rule},
        }
    )


def shopper(leave_speed: float, towards=(1200.0, 500.0), dwell_s=6.0) -> Actor:
    spot = (250.0, 500.0)
    return Actor(
        7,
        concat(
            path([(250, 700), spot], 1.0 * H, FPS),
            still(spot, dwell_s, FPS),
            path([spot, towards], leave_speed * H, FPS)[1:],
        ),
        height=H,
        width=40,
    )


def test_grab_and_run_fires_on_a_dash_to_the_exit_after_dwelling():
    a = shopper(leave_speed=2.0)
    events = of_type(run(RuleEngine(store(), SIZE, FPS), [a], FPS), "grab_and_run")
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    start = events[0]
    assert start.zone == "spirits" and start.track_ids == [7]
    assert start.severity == Severity.ALERT
    assert start.explain["dwell_s"] >= 3.0 and start.explain["towards_exit_cos"] > 0.9
    # Fires within a second of leaving the shelf (x = 384 px).
    left = next(i for i, (x, _) in enumerate(a.feet) if x > 384 and i > 60)
    assert left <= start.frame <= left + FPS


@pytest.mark.parametrize(
    ("speed", "towards", "dwell_s"),
    [
        (0.9, (1200.0, 500.0), 6.0),  # walks to the exit
        (2.0, (20.0, 100.0), 6.0),  # dashes away from the exit
        (2.0, (1200.0, 500.0), 1.0),  # only passed the shelf
    ],
)
def test_grab_and_run_quiet_for_near_misses(speed, towards, dwell_s):
    a = shopper(leave_speed=speed, towards=towards, dwell_s=dwell_s)
    assert of_type(run(RuleEngine(store(), SIZE, FPS), [a], FPS), "grab_and_run") == []


def test_a_track_jumping_to_another_person_is_not_a_run():
    # The tracker hands id 1 to someone 300 px away: one big step, then standing still.
    feet = concat(still((300, 400), 2.0, FPS), still((600, 400), 2.0, FPS))
    a = Actor(1, feet, height=H, width=40)
    quick = validate({"rules": {"running": {"min_duration_s": 0.2}}})
    assert of_type(run(RuleEngine(quick, SIZE, FPS), [a], FPS), "running") == []
