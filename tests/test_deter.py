"""Deterrent controller on gpiozero MockFactory pins: on_s, cooldown, escalation, quiet hours,
mute (command and button), safety limits; every actuation recorded as an event."""

from __future__ import annotations

import math
from datetime import datetime

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


ESCALATION = {
    "light": {"kind": "light", "pin": 17, "on_s": 30, "cooldown_s": 0},
    "voice": {"kind": "buzzer", "pin": 22, "on_s": 8, "cooldown_s": 0},
    "siren": {"kind": "relay", "pin": 23, "on_s": 10, "cooldown_s": 0},
}
POLICY = {
    "escalation": {
        "loitering": {
            "cooldown_s": 60,
            "stages": [
                {"after_s": 0, "outputs": ["light"]},
                {"after_s": 10, "outputs": ["voice"]},
                {"after_s": 20, "outputs": ["siren"], "alert": True},
            ],
        }
    }
}


def escalation_pins(mock_pins):
    return {n: mock_pins.pin(f"GPIO{p}") for n, p in (("light", 17), ("voice", 22), ("siren", 23))}


def test_escalation_stages_fire_at_their_delays_then_rule_cooldown(mock_pins):
    cfg = make_cfg(
        ESCALATION, POLICY, rule_deterrent="light"
    )  # the policy wins over the rule's one output
    with DeterrentController(cfg) as ctrl:
        tl = Timeline(ctrl, escalation_pins(mock_pins))
        tl.event(loiter(EventPhase.START, 5.0))
        tl.event(loiter(EventPhase.UPDATE, 12.0))
        tl.event(loiter(EventPhase.END, 30.0))
        tl.event(loiter(EventPhase.START, 50.0, "e2"))  # within the policy's 60 s cooldown
        tl.event(loiter(EventPhase.END, 52.0, "e2"))
        tl.run_until(95.0)
        tl.event(loiter(EventPhase.START, 95.0, "e3"))  # cooldown over (30 + 60)
        tl.event(loiter(EventPhase.END, 97.0, "e3"))  # ends before stage 2: no voice, no siren
        tl.run_until(140.0)
    assert_transitions(
        tl.transitions["light"], [(0, False), (5, True), (35, False), (95, True), (125, False)]
    )
    assert_transitions(tl.transitions["voice"], [(0, False), (15, True), (23, False)])
    assert_transitions(tl.transitions["siren"], [(0, False), (25, True), (35, False)])
    alerts = [e for e in tl.records if e.explain["action"] == "alert"]
    assert len(alerts) == 1 and alerts[0].severity == Severity.ALERT
    assert alerts[0].time == pytest.approx(25.0) and alerts[0].explain["stage"] == 3
    stages = {
        e.explain.get("output"): e.explain["stage"]
        for e in tl.records
        if e.explain["action"] == "on"
    }
    assert stages == {"light": 1, "voice": 2, "siren": 3}
    sup = [e for e in tl.records if e.explain["action"] == "suppressed"]
    assert [(e.time, e.explain["reason"]) for e in sup] == [(50.0, "rule cooldown")]


def test_two_situations_share_one_escalation_until_both_end(mock_pins):
    cfg = make_cfg(ESCALATION, POLICY)
    with DeterrentController(cfg) as ctrl:
        tl = Timeline(ctrl, escalation_pins(mock_pins))
        tl.event(loiter(EventPhase.START, 0.0, "a"))
        tl.event(loiter(EventPhase.START, 4.0, "b"))
        tl.event(loiter(EventPhase.END, 8.0, "a"))  # b still loitering: escalation goes on
        tl.run_until(11.0)
        assert ctrl.state(11.0)["escalations"]["loitering"]["stage"] == 2
        tl.event(loiter(EventPhase.END, 15.0, "b"))
        tl.run_until(40.0)
    assert [s for _, s in tl.transitions["voice"]] == [False, True, False]
    assert [s for _, s in tl.transitions["siren"]] == [False]  # ended before 20 s


def test_quiet_hours_silence_audible_outputs_only(mock_pins):
    night = {"quiet_hours": ["22:00-07:00"], **POLICY}
    clock = {"now": datetime(2026, 11, 28, 23, 30)}
    cfg = make_cfg(ESCALATION, night)
    with DeterrentController(cfg, wall_clock=lambda: clock["now"]) as ctrl:
        tl = Timeline(ctrl, escalation_pins(mock_pins))
        assert ctrl.is_quiet()
        tl.event(loiter(EventPhase.START, 0.0))
        tl.run_until(12.0)
        assert tl.pins["light"].state is True  # a light is not audible: it still fires
        assert tl.pins["voice"].state is False
        clock["now"] = datetime(2026, 11, 29, 7, 0)  # quiet hours over before stage 3
        assert not ctrl.is_quiet()
        tl.run_until(22.0)
        assert tl.pins["siren"].state is True
    sup = [e for e in tl.records if e.explain["action"] == "suppressed"]
    assert [(e.explain["output"], e.explain["reason"]) for e in sup] == [("voice", "quiet hours")]


def test_quiet_hours_all_outputs(mock_pins):
    cfg = make_cfg(
        ESCALATION, {"quiet_hours": ["08:00-09:00"], "quiet_applies_to": "all", **POLICY}
    )
    with DeterrentController(cfg, wall_clock=lambda: datetime(2026, 1, 1, 8, 59)) as ctrl:
        out = ctrl.on_event(loiter(EventPhase.START, 0.0), 0.0)
        assert [e.explain["action"] for e in out] == ["suppressed"]
        assert mock_pins.pin("GPIO17").state is False


def test_hub_mute_cuts_outputs_and_holds_them_off_until_it_expires(mock_pins):
    cfg = make_cfg(
        {"light": {"kind": "light", "pin": 17, "on_s": 20, "cooldown_s": 0}}, rule_deterrent="light"
    )
    with DeterrentController(cfg) as ctrl:
        tl = Timeline(ctrl, {"light": mock_pins.pin("GPIO17")})
        tl.event(loiter(EventPhase.START, 1.0))
        tl.run_until(3.0)
        tl.records += ctrl.mute(1, 3.0)  # one minute, by hub command
        tl._sample()
        tl.event(loiter(EventPhase.END, 4.0))
        tl.event(loiter(EventPhase.START, 30.0, "e2"))  # muted: nothing switches
        tl.event(loiter(EventPhase.END, 35.0, "e2"))
        tl.event(loiter(EventPhase.START, 64.0, "e3"))  # mute over at 63 s
        tl.run_until(70.0)
    assert_transitions(tl.transitions["light"], [(0, False), (1, True), (3, False), (64, True)])
    acts = [(e.time, e.explain["action"], e.explain["reason"]) for e in tl.records]
    assert (3.0, "muted", "mute by hub") in acts
    assert (3.0, "off", "muted by hub") in acts
    assert (30.0, "suppressed", "muted by hub") in acts
    # unmute early
    with DeterrentController(cfg) as ctrl2:
        ctrl2.mute(10, 0.0)
        assert ctrl2.is_muted(5.0)
        ctrl2.mute(0, 5.0)
        assert not ctrl2.is_muted(5.0)


def test_mute_button_input(mock_pins):
    cfg = make_cfg(
        {"light": {"kind": "light", "pin": 17, "on_s": 20, "cooldown_s": 0}},
        {"mute_button": "GPIO5", "mute_minutes": 2},
        rule_deterrent="light",
    )
    with DeterrentController(cfg) as ctrl:
        button = mock_pins.pin("GPIO5")
        ctrl.on_event(loiter(EventPhase.START, 0.0), 0.0)
        assert mock_pins.pin("GPIO17").state is True
        button.drive_low()  # pressed (pull-up, button to ground)
        button.drive_high()
        out = ctrl.tick(1.0)
        assert [(e.explain["action"], e.explain["reason"]) for e in out] == [
            ("muted", "mute by button"),
            ("off", "muted by button"),
        ]
        assert mock_pins.pin("GPIO17").state is False
        assert ctrl.is_muted(120.9) and not ctrl.is_muted(121.0)


def test_safety_max_on_cuts_an_output_kept_on_too_long(mock_pins):
    cfg = make_cfg(
        {"light": {"kind": "light", "pin": 17, "on_s": 5, "max_on_s": 8, "cooldown_s": 0}}
    )
    with DeterrentController(cfg) as ctrl:
        tl = Timeline(ctrl, {"light": mock_pins.pin("GPIO17")})
        for t in (0.0, 3.0, 6.0):  # each test extends the on time: it would stay on to 11 s
            tl.run_until(t)
            tl.records += ctrl.test("light", t)
            tl._sample()
        tl.run_until(15.0)
    assert_transitions(tl.transitions["light"], [(0, False), (0, True), (8, False)])
    off = [e for e in tl.records if e.explain["action"] == "off"]
    assert len(off) == 1 and off[0].explain["reason"] == "safety: max_on_s reached"
    assert off[0].severity == Severity.WARN and off[0].explain["on_for_s"] == pytest.approx(8.0)


def test_safety_duty_cycle_cuts_and_refuses(mock_pins):
    cfg = make_cfg(
        {
            "light": {
                "kind": "light",
                "pin": 17,
                "on_s": 6,
                "cooldown_s": 0,
                "max_duty": 0.25,
                "duty_window_s": 40,
            }
        }
    )  # at most 10 s on in any 40 s
    with DeterrentController(cfg) as ctrl:
        tl = Timeline(ctrl, {"light": mock_pins.pin("GPIO17")})
        for t in (0.0, 7.0, 12.0, 52.0):
            tl.run_until(t)
            tl.records += ctrl.test("light", t)
            tl._sample()
        tl.run_until(60.0)
    assert_transitions(
        tl.transitions["light"],
        [(0, False), (0, True), (6, False), (7, True), (11, False), (52, True), (58, False)],
    )
    acts = [(e.time, e.explain["action"], e.explain["reason"]) for e in tl.records]
    assert (11.0, "off", "safety: duty cycle limit") in [(round(a, 1), b, c) for a, b, c in acts]
    assert (12.0, "refused", "safety: duty cycle limit") in acts


def test_backstop_cuts_output_when_the_loop_stops_ticking(mock_pins):
    import time

    cfg = make_cfg({"light": {"kind": "light", "pin": 17, "on_s": 0.2, "max_on_s": 0.3}})
    with DeterrentController(cfg) as ctrl:
        ctrl.test("light", 0.0)
        pin = mock_pins.pin("GPIO17")
        assert pin.state is True
        deadline = time.monotonic() + 5.0
        while pin.state and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pin.state is False  # no tick was called: the wall-clock backstop cut it
        out = ctrl.tick(0.1)
        assert [e.explain["reason"] for e in out] == ["safety: backstop (loop stalled)"]


def test_serial_siren_speaks_the_documented_protocol(mock_pins):
    from firmware.deter.outputs import CMD_LOOP_TRACK, CMD_STOP, CMD_VOLUME, parse_dfplayer_frame

    cfg = make_cfg(
        {"siren": {"kind": "serial", "port": "loop://", "track": 3, "volume": 20, "on_s": 4}}
    )
    with DeterrentController(cfg) as ctrl:
        port = ctrl.outputs["siren"].out.port
        ctrl.test("siren", 0.0)
        ctrl.tick(4.0)
        data = port.read(30)
    frames = [parse_dfplayer_frame(data[i : i + 10]) for i in range(0, 30, 10)]
    assert frames == [(CMD_VOLUME, 20), (CMD_LOOP_TRACK, 3), (CMD_STOP, 0)]
    with pytest.raises(ValueError, match="checksum"):
        parse_dfplayer_frame(data[:7] + b"\x00\x00" + data[9:10])


def test_voice_message_played_through_the_player_and_stopped(mock_pins, tmp_path):
    import sys
    import time

    marker = tmp_path / "played"
    script = "import sys, time; open(sys.argv[1], 'w').write(sys.argv[2] + ' ' + sys.argv[3]); time.sleep(60)"
    cfg = make_cfg(
        {
            "voice": {
                "kind": "voice",
                "audio_file": "msg.wav",
                "alsa_device": "hw:1,0",
                "player": [sys.executable, "-c", script, str(marker), "{device}", "{file}"],
                "pin": 24,  # amplifier enable
                "on_s": 3,
            }
        }
    )
    with DeterrentController(cfg, base_dir=tmp_path) as ctrl:
        amp = mock_pins.pin("GPIO24")
        ctrl.test("voice", 0.0)
        proc = ctrl.outputs["voice"].out.proc
        assert amp.state is True and proc.poll() is None
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == f"hw:1,0 {tmp_path / 'msg.wav'}"
        out = ctrl.tick(3.0)
        assert out[0].explain["action"] == "off"
        assert proc.poll() is not None and amp.state is False


def test_unavailable_output_is_reported_not_fatal(mock_pins):
    cfg = make_cfg(
        {
            "siren": {"kind": "serial", "port": "/dev/ttyVIGIL-NOPE"},
            "light": {"kind": "light", "pin": 17},
        },
        {"escalation": {"loitering": {"stages": [{"after_s": 0, "outputs": ["siren", "light"]}]}}},
    )
    with DeterrentController(cfg) as ctrl:
        assert "ttyVIGIL-NOPE" in ctrl.state(0.0)["outputs"]["siren"]["error"]
        out = ctrl.on_event(loiter(EventPhase.START, 0.0), 0.0)
        assert [(e.explain["output"], e.explain["action"]) for e in out] == [
            ("siren", "failed"),
            ("light", "on"),
        ]


def test_looped_clip_clock_reset_switches_off_and_restarts(mock_pins):
    cfg = make_cfg(
        {"light": {"kind": "light", "pin": 17, "on_s": 5, "cooldown_s": 100}},
        rule_deterrent="light",
    )
    with DeterrentController(cfg) as ctrl:
        ctrl.on_event(loiter(EventPhase.START, 50.0), 50.0)
        out = ctrl.tick(0.0)  # the clip started over
        assert [e.explain["reason"] for e in out] == ["source clock reset"]
        out = ctrl.on_event(loiter(EventPhase.START, 1.0, "e2"), 1.0)
        assert [e.explain["action"] for e in out] == ["on"]  # cooldown of the old timeline cleared


def test_tonal_buzzer_plays_its_tone_on_a_pwm_pin():
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = MockFactory(pin_class=MockPWMPin)
    cfg = make_cfg({"speaker": {"kind": "buzzer", "pin": 18, "tone_hz": 880, "on_s": 2}})
    try:
        with DeterrentController(cfg, pin_factory=factory) as ctrl:
            pin = factory.pin("GPIO18")
            ctrl.test("speaker", 0.0)
            assert pin.frequency == pytest.approx(880, rel=0.01)
            ctrl.tick(2.0)
            assert pin.frequency is None
    finally:
        factory.reset()


def test_dimmed_light_and_blinking_relay():
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = MockFactory(pin_class=MockPWMPin)
    cfg = make_cfg(
        {
            "lamp": {"kind": "light", "pin": 12, "brightness": 0.4, "on_s": 2},
            "beacon": {
                "kind": "relay",
                "pin": 16,
                "pattern": "blink",
                "blink_on_s": 0.05,
                "blink_off_s": 0.05,
                "on_s": 2,
            },
        }
    )
    try:
        with DeterrentController(cfg, pin_factory=factory) as ctrl:
            ctrl.test("lamp", 0.0)
            assert factory.pin("GPIO12").state == pytest.approx(0.4)
            ctrl.test("beacon", 0.0)
            import time

            time.sleep(0.3)  # gpiozero's blink thread toggles the relay
            states = [s.state for s in factory.pin("GPIO16").states]
            assert states.count(True) >= 2 and states.count(False) >= 2
            ctrl.tick(2.0)
            assert factory.pin("GPIO12").state == 0 and factory.pin("GPIO16").state == 0
    finally:
        factory.reset()


def test_off_on_end_and_instant_events(mock_pins):
    policy = {
        "escalation": {
            "loitering": {
                "cooldown_s": 0,
                "off_on_end": True,
                "stages": [
                    {"after_s": 0, "outputs": ["light"]},
                    {"after_s": 5, "outputs": ["siren"]},
                ],
            }
        }
    }
    cfg = make_cfg(ESCALATION, policy)
    with DeterrentController(cfg) as ctrl:
        tl = Timeline(ctrl, escalation_pins(mock_pins))
        tl.event(loiter(EventPhase.START, 1.0))
        tl.event(loiter(EventPhase.END, 3.0))  # the person left: the light goes off with them
        tl.run_until(10.0)
        tl.event(loiter(EventPhase.INSTANT, 12.0, "i1"))  # instant: only the after_s = 0 stage
        tl.run_until(45.0)
    # the instant event's light runs its on_s (30 s): off_on_end applies to situations that end
    assert_transitions(
        tl.transitions["light"], [(0, False), (1, True), (3, False), (12, True), (42, False)]
    )
    assert [s for _, s in tl.transitions["siren"]] == [False]
    assert not ctrl.escalations


@pytest.mark.parametrize(
    "line, says",
    [
        ("on_s = inf", "on_s: Input should be a finite number"),
        ("max_on_s = inf", "max_on_s: Input should be a finite number"),
        ("duty_window_s = inf", "duty_window_s: Input should be a finite number"),
        ("duty_window_s = nan", "duty_window_s: Input should be a finite number"),
        ("cooldown_s = inf", "cooldown_s: Input should be a finite number"),
        ("max_on_s = 1e300", "max_on_s: Input should be less than or equal to 3600"),
        ("duty_window_s = 1e12", "duty_window_s: Input should be less than or equal to 86400"),
    ],
)
def test_safety_limits_are_finite_and_bounded(line, says):
    """Issue 17: on_s, max_on_s and duty_window_s accepted inf (TOML's inf): a light then
    stayed on and the backstop thread died with OverflowError. Now the config is refused."""
    from firmware.config import ConfigError, parse_text

    text = f'[site]\nsite_id = "s"\nunit_id = "u"\n[deterrents.light]\npin = 17\n{line}\n'
    with pytest.raises(ConfigError) as e:
        parse_text(text)
    assert any(p == f"deterrents.light.{says}" for p in e.value.problems), e.value.problems


def test_escalation_times_are_finite():
    from firmware.config import ConfigError, parse_text

    text = (
        '[site]\nsite_id = "s"\nunit_id = "u"\n[deterrents.light]\npin = 17\n'
        '[[deterrence.escalation.loitering.stages]]\nafter_s = inf\noutputs = ["light"]\n'
    )
    with pytest.raises(ConfigError, match="finite number"):
        parse_text(text)
