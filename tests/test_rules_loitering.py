"""Loitering: fires when the time in a zone passes the threshold, in stages, once per
situation; stays quiet for a shopper who stays a little less."""

from __future__ import annotations

import pytest

from firmware.config import validate
from firmware.events.records import EventPhase, Severity
from firmware.rules import RuleEngine
from firmware.rules.synthetic import Actor, concat, path, run, still

FPS = 10.0
SIZE = (400, 300)
SHELF = [(0.25, 0.5), (0.75, 0.5), (0.75, 1.0), (0.25, 1.0)]  # x 100..300, y 150..300 px
TILL = [(0.0, 0.0), (0.2, 0.0), (0.2, 0.3), (0.0, 0.3)]


def site(**loitering):
    return validate(
        {
            "zones": [
                {"name": "shelf", "purpose": "high_value", "polygon": SHELF},
                {"name": "till", "purpose": "till", "polygon": TILL},
            ],
            "deterrents": {"light": {"pin": 17}},
            "rules": {"loitering": loitering},
        }
    )


def shopper(stay_s: float, tid: int = 1, spot=(200.0, 250.0)) -> Actor:
    """Walks in from the left (outside the zone), stands at the shelf, walks out."""
    walk_in = path([(20, 250), spot], 80.0, FPS)
    walk_out = path([spot, (20, 250)], 80.0, FPS)
    return Actor(tid, concat(walk_in, still(spot, stay_s, FPS), walk_out))


def first_inside_frame(actor: Actor) -> int:
    return int(next(i for i, (x, y) in enumerate(actor.feet) if x > 100))


def loitering(events):
    return [e for e in events if e.type == "loitering"]


def test_fires_at_the_threshold_with_staged_severity_and_one_event_id():
    a = shopper(stay_s=25.0)
    engine = RuleEngine(site(threshold_s=5, warn_s=10, alert_s=20), SIZE, FPS)
    events = loitering(run(engine, [a], FPS))
    assert [(e.phase, e.severity) for e in events] == [
        (EventPhase.START, Severity.NOTICE),
        (EventPhase.UPDATE, Severity.WARN),
        (EventPhase.UPDATE, Severity.ALERT),
        (EventPhase.END, Severity.ALERT),
    ]
    assert len({e.event_id for e in events}) == 1
    start = events[0]
    entry = first_inside_frame(a)
    assert start.frame == entry + 5 * FPS  # dwell counted from the first frame inside
    assert start.zone == "shelf" and start.track_ids == [1] and start.rule == "loitering"
    assert start.explain["threshold_s"] == 5 and start.explain["dwell_s"] == pytest.approx(5.0)
    assert events[1].frame == entry + 10 * FPS and events[2].frame == entry + 20 * FPS
    end = events[-1]
    # Ends after the person left the zone (plus the inertia and the grace time), not before.
    left = max(i for i, (x, y) in enumerate(a.feet) if x > 100)
    assert left < end.end_frame + 4 and end.frame <= left + 3 + 2 * FPS + 2
    assert end.explain["dwell_s"] > 20


def test_quiet_for_a_shorter_stay_and_for_passers_by():
    near_miss = shopper(stay_s=25.0, tid=1)  # 25 s < 30 s default
    passer = Actor(2, path([(20, 200), (390, 200)], 60.0, FPS))
    engine = RuleEngine(site(), SIZE, FPS)
    assert loitering(run(engine, [near_miss, passer], FPS)) == []


def test_repeated_returns_to_the_zone_count():
    spot = (200.0, 250.0)
    visit = still(spot, 12.0, FPS)
    away = path([spot, (20, 250), (20, 250), spot], 100.0, FPS)
    a = Actor(3, concat(path([(20, 250), spot], 80.0, FPS), visit, away, visit))
    events = loitering(
        run(RuleEngine(site(threshold_s=20, warn_s=40, alert_s=60), SIZE, FPS), [a], FPS)
    )
    assert [e.phase for e in events] == [EventPhase.START, EventPhase.END]
    assert events[0].explain["visits"] == 2
    # Without the return window each visit starts from zero: no event.
    quiet = RuleEngine(site(threshold_s=20, warn_s=40, alert_s=60, return_window_s=0), SIZE, FPS)
    assert loitering(run(quiet, [a], FPS)) == []


def test_till_is_not_watched_by_default_but_can_be_named():
    waiting = Actor(4, still((40.0, 60.0), 40.0, FPS))
    assert loitering(run(RuleEngine(site(), SIZE, FPS), [waiting], FPS)) == []
    named = RuleEngine(site(zones=["till"]), SIZE, FPS)
    assert [e.zone for e in loitering(run(named, [waiting], FPS))] == ["till", "till"]


def test_deterrent_switches_once_at_the_configured_stage():
    """The controller switches a rule's own deterrent once, when the situation reaches act_at."""
    from gpiozero.pins.mock import MockFactory

    from firmware.deter import DeterrentController

    a = shopper(stay_s=25.0)
    cfg = site(threshold_s=5, warn_s=10, alert_s=20, deterrent="light", act_at="warn")
    engine = RuleEngine(cfg, SIZE, FPS)
    pins = MockFactory()
    acted = []
    with DeterrentController(cfg, pin_factory=pins, backstop=False) as deter:
        for e in run(engine, [a], FPS):
            for d in deter.on_event(e, e.time):
                if d.explain["action"] == "on":
                    acted.append((d.explain["output"], e.phase, e.severity))
    assert acted == [("light", EventPhase.UPDATE, Severity.WARN)]


def test_stages_must_be_ordered():
    from firmware.config import ConfigError

    with pytest.raises(ConfigError, match="stages must not decrease"):
        site(threshold_s=50, warn_s=40)


def test_a_replay_starting_over_ends_open_situations_and_starts_afresh():
    from firmware.rules.synthetic import frames

    a = shopper(stay_s=25.0)
    engine = RuleEngine(site(threshold_s=5, warn_s=10, alert_s=20), SIZE, FPS)
    engine.set_armed("shelf", False)
    clip = list(frames([a]))[:150]  # stops while the shopper is still at the shelf
    first = [e for f, tr in enumerate(clip) for e in engine.update(tr, f / FPS, f)]
    assert [e.phase for e in loitering(first)] == [EventPhase.START, EventPhase.UPDATE]
    again = engine.update(clip[0], 0.0, 0)  # the clip starts over: time goes back
    assert [(e.type, e.phase) for e in again if e.type == "loitering"] == [
        ("loitering", EventPhase.END)
    ]
    assert not engine.zones.armed[engine.zones.index["shelf"]]  # hub state survives
    second = [e for f, tr in enumerate(clip[1:], 1) for e in engine.update(tr, f / FPS, f)]
    assert [e.phase for e in loitering(second)] == [EventPhase.START, EventPhase.UPDATE]
    assert loitering(second)[0].event_id != loitering(first)[0].event_id


def test_stage_times_default_to_multiples_of_the_threshold():
    only = site(threshold_s=90).rules.loitering
    assert (only.warn_s, only.alert_s) == (180.0, 360.0)
    both = site(threshold_s=10, warn_s=15).rules.loitering
    assert (both.warn_s, both.alert_s) == (15.0, 40.0)
