"""The unit's one event bus: stamped once, one delivery order, what --events-out writes is
what the hub receives; and a unit whose build fails releases what it opened."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from gpiozero import LED

from firmware.config import load
from firmware.events.bus import COUNTS, DETERRENTS, LINK, RECORDER, EventBus, Stamper
from firmware.events.records import Event, EventPhase, Severity
from firmware.recording.crypto import generate_key_file
from firmware.unit import RunOptions, apply_overrides, build_unit
from tests.test_run import demo_site, run_cli


def _ev(rule: str = "loitering", phase: EventPhase = EventPhase.START) -> Event:
    return Event(rule, rule, phase, Severity.NOTICE, 1.0, 10, 1.0, 10)


def test_bus_stamps_once_and_delivers_in_order_with_caused_events_after():
    bus = EventBus(Stamper("u1", "s1", 7))
    seen: list[tuple[str, str, int | None, str | None]] = []

    def recorder(ev):
        ev.incident_id = "inc-1"
        seen.append(("recorder", ev.type, ev.seq, ev.incident_id))

    def deterrents(ev):
        seen.append(("deterrents", ev.type, ev.seq, ev.incident_id))
        if ev.type != "deterrent":
            return [Event.instant(ev.time, ev.frame, type="deterrent", rule="d", severity=1)]
        return None

    bus.subscribe(LINK, "link", lambda ev: seen.append(("link", ev.type, ev.seq, ev.incident_id)))
    bus.subscribe(DETERRENTS, "deterrents", deterrents)
    bus.subscribe(RECORDER, "recorder", recorder)
    assert bus.consumers == ["recorder", "deterrents", "link"]
    with pytest.raises(ValueError):
        bus.subscribe(COUNTS, "link", print)
    out = bus.publish([_ev(), _ev("running")])
    assert [(e.type, e.seq) for e in out] == [
        ("loitering", 0),
        ("running", 1),
        ("deterrent", 2),
        ("deterrent", 3),
    ]
    assert all((e.unit, e.site, e.session) == ("u1", "s1", 7) and e.msg_id for e in out)
    assert len({e.msg_id for e in out}) == 4
    # every consumer after the recorder sees the final record
    assert seen[:3] == [
        ("recorder", "loitering", 0, "inc-1"),
        ("deterrents", "loitering", 0, "inc-1"),
        ("link", "loitering", 0, "inc-1"),
    ]
    again = bus.publish(out[:1])  # an event already stamped keeps its stamp
    assert [e.seq for e in again] == [0, 4]  # (what it causes again is a new record)


def test_events_out_carries_the_stamps_and_deterrents_carry_the_incident_id(tmp_path):
    generate_key_file(tmp_path / "rec.key")
    site = demo_site(tmp_path)
    site.write_text(
        site.read_text().replace(
            "[recording]\nenabled = false",
            '[recording]\nenabled = true\nkey_file = "rec.key"\nmin_severity = "notice"',
        )
    )
    lines = []
    for run in (1, 2):
        out = tmp_path / f"ev{run}.jsonl"
        r = run_cli(["run", "-c", str(site), "--fast", "--quiet", "--events-out", str(out)])
        assert r.returncode == 0, r.stderr
        lines.append([json.loads(x) for x in out.read_text().splitlines()])
    events = lines[0]
    assert events
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert {(e["unit"], e["site"]) for e in events} == {("demo-unit", "demo-store")}
    assert len({e["session"] for e in events}) == 1
    assert lines[1][0]["session"] == events[0]["session"] + 1  # a new session per start
    assert all(len(e["msg_id"]) == 32 for e in events)
    start = next(e for e in events if e["type"] == "loitering" and e["phase"] == "start")
    assert start["incident_id"]
    acts = [e for e in events if e["explain"].get("trigger_event") == start["event_id"]]
    assert acts and all(e["incident_id"] == start["incident_id"] for e in acts), acts


def test_vigil_run_with_a_build_that_fails_half_way_is_one_error_line(tmp_path):
    r = run_cli(
        ["run", "-c", str(demo_site(tmp_path)), "--fast", "--quiet",
         "--preview", str(tmp_path / "no-such-folder" / "p.mp4")]
    )  # fmt: skip
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("vigil")]  # (log lines aside)
    assert len(lines) == 1 and lines[0].startswith("vigil: error: "), r.stderr
    assert "Traceback" not in r.stderr
    assert "no-such-folder" in lines[0]


def test_a_failed_build_releases_what_it_opened(tmp_path, pins):
    loaded = apply_overrides(load(demo_site(tmp_path)), RunOptions())
    before = set(threading.enumerate())
    opts = RunOptions(pin_factory=pins, watchdog=False, preview=str(tmp_path / "missing" / "p.mp4"))
    with pytest.raises(OSError, match="missing"):
        build_unit(loaded, opts)
    # the deterrent's pin is free again and no reader thread is left running
    LED("GPIO17", pin_factory=pins).close()
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, left
    assert Path(tmp_path / "missing").exists() is False
