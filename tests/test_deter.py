"""Deterrent controller on gpiozero MockFactory pins: on_s, cooldown, escalation, quiet hours,
mute (command and button), safety limits; every actuation recorded as an event."""

from __future__ import annotations

import math

import pytest

from firmware.config import validate
from firmware.deter import DeterrentController
from firmware.events.records import Event, EventPhase, Severity

STEP = 0.1


def make_cfg(deterrents: dict, deterrence: dict | None = None, rule_deterrent: str | None = None):
    data: dict = {
        "zones": [{"name": "shelf", "purpose": "high_value", "polygon": [[0, 0], [1, 0], [1, 1]]}],
        "rules": {"loitering": {"threshold_s": 10, "deterrent": rule_deterrent}},
        "deterrents": deterrents,
    }
    if rule_deterrent is None:
        del data["rules"]["loitering"]["deterrent"]
    if deterrence is not None:
        data["deterrence"] = deterrence
    return validate(data)


def loiter(phase: EventPhase, t: float, event_id: str = "e1") -> Event:
    return Event(
        type="loitering",
        rule="loitering",
        phase=phase,
        severity=Severity.WARN,
        start_time=t,
        start_frame=int(t * 10),
        time=t,
        frame=int(t * 10),
        event_id=event_id,
        zone="shelf",
        track_ids=[7],
        explain={"dwell_s": 10.0, "threshold_s": 10.0},
    )


class Timeline:
    """Steps a virtual source clock, feeds events, records every pin transition at its time."""

    def __init__(self, ctrl: DeterrentController, pins: dict[str, object]):
        self.ctrl, self.pins = ctrl, pins
        self.t = 0.0
        self.records: list[Event] = []
        self.transitions: dict[str, list[tuple[float, bool]]] = {
            n: [(0.0, bool(p.state))] for n, p in pins.items()
        }

    def _sample(self) -> None:
        for n, p in self.pins.items():
            if bool(p.state) != self.transitions[n][-1][1]:
                self.transitions[n].append((round(self.t, 3), bool(p.state)))

    def event(self, ev: Event) -> list[Event]:
        self.run_until(ev.time)
        out = self.ctrl.on_event(ev, self.t)
        self.records += out
        self._sample()
        return out

    def run_until(self, t_end: float) -> None:
        while self.t < t_end - 1e-9:
            self.t = round(self.t + STEP, 6)
            self.records += self.ctrl.tick(self.t)
            self._sample()

    def actions(self, output: str | None = None) -> list[tuple[float, str]]:
        return [
            (round(e.time, 3), e.explain["action"])
            for e in self.records
            if output is None or e.explain.get("output") == output
        ]


def assert_transitions(actual: list[tuple[float, bool]], expected: list[tuple[float, bool]]):
    """Like MockPin.assert_states_and_times, on the virtual clock (one tick of tolerance)."""
    assert [s for _, s in actual] == [s for _, s in expected], actual
    for (ta, _), (te, _) in zip(actual, expected, strict=True):
        assert math.isclose(ta, te, abs_tol=STEP + 1e-6), (actual, expected)


def test_rule_deterrent_on_for_on_s_then_off_with_cooldown(mock_pins):
    cfg = make_cfg(
        {"light": {"kind": "light", "pin": 17, "on_s": 5, "cooldown_s": 20}}, rule_deterrent="light"
    )
    with DeterrentController(cfg) as ctrl:
        pin = mock_pins.pin("GPIO17")
        tl = Timeline(ctrl, {"light": pin})
        tl.run_until(1.0)
        assert pin.state is False
        tl.event(loiter(EventPhase.START, 1.0))
        assert pin.state is True  # high as soon as the rule fires
        tl.run_until(3.0)
        tl.event(loiter(EventPhase.END, 3.0))
        tl.run_until(10.0)
        assert pin.state is False
        # a second loitering at 12 s is inside the 20 s cooldown (off at 6 s -> free at 26 s)
        tl.event(loiter(EventPhase.START, 12.0, "e2"))
        tl.run_until(14.0)
        tl.event(loiter(EventPhase.END, 14.0, "e2"))
        tl.run_until(27.0)
        tl.event(loiter(EventPhase.START, 27.0, "e3"))
        tl.run_until(35.0)
    assert_transitions(
        tl.transitions["light"],
        [(0, False), (1.0, True), (6.0, False), (27.0, True), (32.0, False)],
    )
    pin.assert_states([False, True, False, True, False])  # gpiozero's own record of the pin
    assert tl.actions("light") == [
        (1.0, "on"), (6.0, "off"), (12.0, "suppressed"), (27.0, "on"), (32.0, "off"),
    ]  # fmt: skip
    sup = [e for e in tl.records if e.explain["action"] == "suppressed"][0]
    assert sup.explain["reason"] == "cooldown" and sup.explain["until"] == pytest.approx(26.0)
    on = tl.records[0]
    assert on.type == "deterrent" and on.rule == "loitering" and on.zone == "shelf"
    assert on.track_ids == [7] and on.explain["pin"] == "GPIO17"
    assert on.explain["trigger_event"] == "e1"
    assert Event.from_dict(on.to_dict()).explain == on.to_dict()["explain"]


def test_active_low_relay_and_no_deterrent_rule(mock_pins):
    cfg = make_cfg({"relay": {"kind": "relay", "pin": "BOARD11", "active_high": False, "on_s": 2}})
    with DeterrentController(cfg) as ctrl:
        pin = mock_pins.pin("GPIO17")
        assert pin.state is True  # active low: off is high
        # no rule names the relay: a loitering event switches nothing
        assert ctrl.on_event(loiter(EventPhase.START, 0.0), 0.0) == []
        assert pin.state is True
        recs = ctrl.test("relay", 1.0)
        assert pin.state is False and recs[0].explain["action"] == "on"
        assert ctrl.tick(2.5) == []
        recs = ctrl.tick(3.0)
        assert pin.state is True and recs[0].explain["action"] == "off"
        with pytest.raises(KeyError, match="no deterrent named 'siren'"):
            ctrl.test("siren", 4.0)
