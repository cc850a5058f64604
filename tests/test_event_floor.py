"""Events carry the floor position of their tracks on a calibrated unit (the demo clip over a
real Mosquitto, `[camera.floor]` added), validate against the CDDL beside old-style events,
and `[site] unit_id = "store"` is refused naming the key."""

from __future__ import annotations

import threading

import cbor2
import pytest

from firmware.config import ConfigError, load, parse_text
from firmware.events.records import Event, Severity
from firmware.unit import RunOptions, apply_overrides, build_unit
from tests.test_run import demo_site
from tools.hub.client import HubClient
from tools.hub.contract import Validator

# normalised image -> metres: a 10 m x 8 m floor seen straight down (enough to check numbers)
FLOOR = "\n[camera.floor]\nhomography = [[10.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 1.0]]\n"


def _run(broker, tmp_path, mock_pins, extra: str):
    site = demo_site(tmp_path, extra=extra, threshold_s=2.0)
    text = site.read_text().replace('[link]\nmqtt = ""', f'[link]\nmqtt = "{broker.url}"')
    site.write_text(text)
    loaded = apply_overrides(load(site), RunOptions())
    unit = build_unit(loaded, RunOptions(loop=True, pin_factory=mock_pins, watchdog=False))
    thread = threading.Thread(target=unit.run, daemon=True)
    return unit, thread


@pytest.mark.parametrize("calibrated", [True, False])
def test_unit_events_carry_floor_positions_when_calibrated(broker, tmp_path, mock_pins, calibrated):
    unit, thread = _run(broker, tmp_path, mock_pins, FLOOR if calibrated else "")
    with HubClient(broker.url, site="demo-store") as hub:
        thread.start()
        try:
            got = hub.wait_for(
                lambda rx: [m for m in rx if m.kind == "events" and m.message["track_ids"]], 60
            )
            tracks = hub.of("tracks", "demo-unit")
        finally:
            unit.loop.stop("test over")
            thread.join(30)
    assert all(m.problems == [] for m in got)  # the CDDL, with and without floor
    e = got[0].message
    if not calibrated:
        assert "floor" not in e  # an uncalibrated unit's events are as before
        return
    assert {f["id"] for f in e["floor"]} == set(e["track_ids"])
    for f in e["floor"]:
        x, y = f["floor"]
        assert 0 <= x <= 10 and 0 <= y <= 8  # on the 10 m x 8 m floor
        # the same track on the tracks topic, near the event's time, stood at the same place
        near = [
            t["floor"]
            for m in tracks
            if abs(m.message["time"] - e["time"]) <= 0.5
            for t in m.message["tracks"]
            if t["id"] == f["id"]
        ]
        assert near and min(abs(n[0] - x) + abs(n[1] - y) for n in near) < 0.5, (f, near)


def test_event_contract_accepts_old_and_new_events_and_refuses_a_bad_floor():
    v = Validator()
    e = Event.instant(1.0, 3, type="loitering", rule="loitering", severity=Severity.WARN)
    e.track_ids, e.seq, e.unit, e.site, e.session, e.msg_id = [3], 0, "u", "s", 1, "a" * 32
    old = e.to_dict()
    assert "floor" not in old and v.check("events", cbor2.dumps(old)) == []
    e.floor = [{"id": 3, "floor": [1.25, 3.5]}]
    assert v.check("events", cbor2.dumps(e.to_dict())) == []
    assert v.check("store/events", cbor2.dumps(e.to_dict())) == []
    assert Event.from_dict(e.to_dict()).floor == e.floor
    bad = e.to_dict() | {"floor": [{"id": 3}]}
    assert v.check("events", cbor2.dumps(bad)) != []
    assert v.check("events", cbor2.dumps(e.to_dict() | {"floor": [[1.0, 2.0]]})) != []


def test_unit_id_store_is_refused_naming_the_key():
    with pytest.raises(ConfigError) as err:
        parse_text('[site]\nsite_id = "s1"\nunit_id = "store"\n')
    msg = str(err.value)
    assert "site.unit_id" in msg and "reserved" in msg and "store" in msg
    assert parse_text('[site]\nunit_id = "storefront"\n').site.unit_id == "storefront"
