"""A hub `config/set` on a running unit, section by section, over a real Mosquitto.

Each section either takes effect in the running stages or is listed in `restart_required`;
afterwards `vigil-diag` status, mute and test-output act on the new stages; an incident open
during the swap closes within its post-event time; a build that fails half-way leaves the
old pipeline running.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.config import load
from firmware.link.signing import Signer
from firmware.recording.crypto import generate_key_file
from firmware.recording.store import IncidentStore
from firmware.unit import RunOptions, Unit, apply_overrides, build_unit
from tests.support.broker import MOSQUITTO, MosquittoBroker
from tests.test_run import demo_site
from tools.diag.cli import main as vigil_diag
from tools.hub.client import HubClient

POST_EVENT_S = 2.0


class Running:
    def __init__(self, unit: Unit, hub: HubClient, base: str, tmp: Path, broker, pins):
        self.unit, self.hub, self.base, self.tmp, self.broker, self.pins = (
            unit,
            hub,
            base,
            tmp,
            broker,
            pins,
        )

    def set(self, text: str) -> dict:
        reply = self.hub.command("demo-unit", "config/set", {"text": text}, timeout=20)
        assert reply["ok"] is True, reply
        return reply["result"]

    def diag(self, capsys, *args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = vigil_diag(
            ["--mqtt", self.broker.url, "--site", "demo-store", "--unit", "demo-unit", "--key",
             str(self.tmp / "hub.pem"), "--timeout", "20", "--json", *args]
        )  # fmt: skip
        return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    if MOSQUITTO is None:
        pytest.skip("mosquitto not installed (bash tools/setup.sh installs it)")
    tmp = tmp_path_factory.mktemp("live")
    generate_key_file(tmp / "rec.key")
    signer = Signer.generate(tmp / "hub.pem", tmp / "hub.pub.pem")
    pins = MockFactory()
    with MosquittoBroker() as broker:
        site = demo_site(tmp).read_text()
        site = site.replace(
            '[link]\nmqtt = ""',
            f'[link]\nmqtt = "{broker.url}"\nhub_public_key = "hub.pub.pem"\nreconnect_min_s = 0.2',
        )
        site = site.replace(
            "[recording]\nenabled = false",
            f'[recording]\nenabled = true\nkey_file = "rec.key"\nmin_severity = "notice"\n'
            f"post_event_s = {POST_EVENT_S}\nmax_clip_s = 60",
        )
        site = site.replace("[recording]", "[tracker]\n\n[schedule]\n\n[privacy]\n\n[recording]")
        (tmp / "site.toml").write_text(site)
        loaded = apply_overrides(load(tmp / "site.toml"), RunOptions())
        unit = build_unit(loaded, RunOptions(loop=True, pin_factory=pins, watchdog=False))
        thread = threading.Thread(target=unit.run, daemon=True)
        thread.start()
        hub = HubClient(broker.url, site="demo-store", signer=signer)
        hub.connect()
        try:
            hub.wait_for(lambda rx: "online" in hub.statuses("demo-unit"), timeout=30)
            yield Running(unit, hub, site, tmp, broker, pins)
        finally:
            hub.close()
            unit.loop.stop("test over")
            thread.join(60)
            pins.close()


def _sub(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


# section -> (edit of the base config, check on the running stages or None for restart)
LIVE: dict[str, tuple[Callable[[str], str], Callable[[Unit], bool]]] = {
    "zones": (
        _sub('name = "exit"', 'name = "door"'),
        lambda u: "door" in u.loop.s.engine.env.zones.names,
    ),
    "lines": (
        lambda t: t + '\n[[lines]]\nname = "aisle"\npoints = [[0.1, 0.5], [0.9, 0.5]]\n',
        lambda u: (
            [ln.name for ln in u.control.loaded.config.lines] == ["aisle"]
            and u.loop.s.engine.cfg.lines[0].name == "aisle"
        ),
    ),
    "tracker": (
        _sub("[tracker]\n", "[tracker]\nmax_lost_s = 3.5\n"),
        lambda u: u.loop.s.tracker.cfg.max_lost_s == 3.5,
    ),
    "rules": (
        _sub("threshold_s = 5.0", "threshold_s = 6.5"),
        lambda u: u.loop.s.engine.cfg.rules.loitering.threshold_s == 6.5,
    ),
    "schedule": (
        _sub("[schedule]\n", '[schedule]\nopen_time = "8:00"\nclose_time = "20:00"\n'),
        lambda u: u.loop.s.engine.cfg.schedule.open_time == "08:00",
    ),
    "deterrents": (
        lambda t: t + '\n[deterrents.buzzer]\nkind = "buzzer"\npin = 27\non_s = 1.0\n',
        lambda u: set(u.loop.s.deterrents.outputs) == {"light", "buzzer"},
    ),
    "deterrence": (
        lambda t: t + "\n[deterrence]\nmute_minutes = 7.0\n",
        lambda u: u.loop.s.deterrents.policy_cfg.mute_minutes == 7.0,
    ),
    "privacy": (
        _sub("[privacy]\n", "[privacy]\nmin_score = 0.2\n"),
        lambda u: u.loop.s.mask_score_threshold == 0.2 and u.loop.s.anonymiser.cfg.min_score == 0.2,
    ),
}
RESTART: dict[str, Callable[[str], str]] = {
    "site": _sub('timezone = "UTC"', 'timezone = "Europe/Paris"'),
    "camera": lambda t: t.replace("[camera]\n", "[camera]\nstall_timeout_s = 4.0\n", 1),
    "detector": lambda t: t + "\n[detector]\nscore_threshold = 0.4\n",
    "link": _sub("reconnect_min_s = 0.2", "reconnect_min_s = 0.3"),
    "storage": lambda t: t.replace('data_dir = "', 'data_dir = "/tmp/vigil-other-', 1),
    "recording": _sub("max_clip_s = 60", "max_clip_s = 90"),
}


def _diag_acts_on_the_new_stages(r: Running, capsys) -> None:
    deter = r.unit.loop.s.deterrents
    code, out = r.diag(capsys, "status")
    assert code == 0, out
    assert set(json.loads(out)["deterrents"]["outputs"]) == set(deter.outputs)
    code, out = r.diag(capsys, "mute", "2")
    assert code == 0, out
    assert deter.state(deter.now())["muted"] is True  # the running controller, not an old one
    code, out = r.diag(capsys, "mute", "0")
    assert code == 0 and not deter.state(deter.now())["muted"]
    code, out = r.diag(capsys, "test-output", "light")
    assert code == 0, out
    assert json.loads(out)["tested"] == ["light"], out
    assert deter.state(deter.now())["outputs"]["light"]["on"]  # the new controller's output
    assert r.pins.pin(17).state  # on its pin


@pytest.mark.parametrize("section", sorted(LIVE) + sorted(RESTART))
def test_config_set_per_section_applies_live_or_asks_for_a_restart(running, section, capsys):
    r = running
    r.set(r.base)  # from the same starting point every time
    before_engine, before_deter = r.unit.loop.s.engine, r.unit.loop.s.deterrents
    edit = LIVE[section][0] if section in LIVE else RESTART[section]
    result = r.set(edit(r.base))
    if section in LIVE:
        assert result["applied"] == [section] and result["restart_required"] == [], result
        assert LIVE[section][1](r.unit), section
        assert r.unit.loop.s.engine is not before_engine  # rebuilt, not patched
    else:
        assert result["restart_required"] == [section] and result["applied"] == [], result
        assert getattr(r.unit.control.loaded.config, section) != getattr(
            r.unit.loaded.config, section
        )
    assert r.unit.loop.s.deterrents is not before_deter
    assert result["saved"] == str(r.unit.data_dir / "config" / "site.toml")
    assert Path(result["saved"]).read_text(encoding="utf-8") == edit(r.base)
    _diag_acts_on_the_new_stages(r, capsys)
    bad = [(m.kind, m.problems) for m in r.hub.received if m.problems]
    assert not bad, bad  # every message, config/set replies included, matches docs/mqtt.md


def test_an_incident_open_during_the_swap_closes_within_its_post_event_time(running):
    r = running
    r.set(r.base)
    store = IncidentStore(r.unit.data_dir)
    seen = len(r.hub.events("demo-unit"))
    # the demo clip's shopper loiters at the display from ~5 s: wait for an incident to open
    deadline = time.monotonic() + 60
    opened = None
    while time.monotonic() < deadline and opened is None:
        for ev in r.hub.events("demo-unit")[seen:]:
            if ev["type"] == "loitering" and ev["phase"] == "start" and ev.get("incident_id"):
                opened = ev
        time.sleep(0.1)
    assert opened is not None, "no incident opened"
    assert opened["incident_id"] not in {i.id for i in store.list()}  # still open
    # the deterrent switched for that situation names the same incident
    r.hub.wait_for(
        lambda rx: any(
            e["type"] == "deterrent" and e["explain"].get("trigger_event") == opened["event_id"]
            for e in r.hub.events("demo-unit")
        ),
        timeout=10,
    )
    acts = [
        e
        for e in r.hub.events("demo-unit")
        if e["type"] == "deterrent" and e["explain"].get("trigger_event") == opened["event_id"]
    ]
    assert all(e["incident_id"] == opened["incident_id"] for e in acts), acts
    swapped = time.monotonic()
    r.set(r.base.replace("threshold_s = 5.0", "threshold_s = 20.0"))
    # the old rules' situation ended through the bus...
    end = r.hub.wait_for(
        lambda rx: next(
            (
                e
                for e in r.hub.events("demo-unit")
                if e["event_id"] == opened["event_id"] and e["phase"] == "end"
            ),
            None,
        ),
        timeout=10,
    )
    assert end["incident_id"] == opened["incident_id"]
    # ... so the recorder closes the clip post_event_s later (not at max_clip_s = 60 s)
    deadline = swapped + POST_EVENT_S + 15.0
    while time.monotonic() < deadline and opened["incident_id"] not in {i.id for i in store.list()}:
        time.sleep(0.1)
    assert opened["incident_id"] in {i.id for i in store.list()}, "the clip did not close"
    assert time.monotonic() - swapped < 60.0


def test_a_build_that_fails_half_way_leaves_the_old_pipeline_running(running, monkeypatch):
    r = running
    r.set(r.base)
    s = r.unit.loop.s
    engine, deter, tracker = s.engine, s.deterrents, s.tracker
    frames = r.unit.loop.metrics.frames

    import firmware.builder as builder

    real = builder.build_deterrents
    calls = {"n": 0}

    def fail_first(loaded, ctx, opened):
        calls["n"] += 1
        if calls["n"] == 1:  # the new config's controller fails; the rollback rebuilds the old
            raise RuntimeError("deterrent hardware exploded")
        return real(loaded, ctx, opened)

    monkeypatch.setattr("firmware.control.build_deterrents", fail_first)
    reply = r.hub.command(
        "demo-unit",
        "config/set",
        {"text": r.base.replace("threshold_s = 5.0", "threshold_s = 9.0")},
        timeout=20,
    )
    assert reply["ok"] is False and "exploded" in json.dumps(reply), reply
    assert s.engine is engine and s.tracker is tracker  # the running stages stay
    assert r.unit.control.loaded.config.rules.loitering.threshold_s == 5.0
    assert s.deterrents is not None and set(s.deterrents.outputs) == set(deter.outputs)
    assert s.deterrents.self_test("light", pulse_s=0.05)["ok"] is True  # its pins work
    time.sleep(1.0)
    assert r.unit.loop.metrics.frames > frames  # and the loop goes on


def test_the_contract_names_every_section_and_checks_the_config_set_result():
    import re

    import cbor2

    from firmware.config.schema import section_apply
    from tools.hub.contract import Validator, rule_subset

    names = re.findall(r'"(\w+)"', rule_subset("section-name").split("=", 1)[1])
    assert sorted(names) == sorted(section_apply())
    reply = {"v": 1, "id": "r1", "cmd": "config/set", "ok": True, "time": 1.0}
    good = {"config_hash": "ab", "applied": ["rules"], "restart_required": [], "saved": None}
    assert Validator().check("reply", cbor2.dumps(reply | {"result": good})) == []
    bad = good | {"applied": ["tills"]}
    assert Validator().check("reply", cbor2.dumps(reply | {"result": bad}))
