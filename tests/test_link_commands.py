"""Signed commands over a real Mosquitto: replies with request ids, refusals with reasons,
config/set -> config/state, and every message checked against the CDDL of docs/mqtt.md."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cbor2
import pytest

from firmware.config import parse_text
from firmware.link import Link
from firmware.link.config import LinkConfig
from firmware.link.signing import Signer
from tools.hub.client import HubClient, command_topic

pytest.importorskip("pycddl")

GOOD_CONFIG = """
[site]
site_id = "s1"
unit_id = "u1"

[[zones]]
name = "till"
polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
"""


class UnitDouble:
    """The unit's side of the commands, in memory: the frame loop implements the real one."""

    def __init__(self) -> None:
        self.armed = {"unit": True, "till": True}
        self.config = GOOD_CONFIG
        self.calls: list[tuple[str, Any]] = []
        self.fail_apply = False

    def arm(self, zone: str | None = None) -> None:
        self._set(zone, True)

    def disarm(self, zone: str | None = None) -> None:
        self._set(zone, False)

    def _set(self, zone: str | None, on: bool) -> None:
        key = zone or "unit"
        if key not in self.armed:
            raise KeyError(f"no zone {zone!r}")
        self.armed[key] = on
        self.calls.append(("arm" if on else "disarm", zone))

    def apply_config(self, text: str) -> dict:
        parse_text(text)
        if self.fail_apply:
            raise RuntimeError("camera would not restart; previous config restored")
        self.config = text
        self.calls.append(("apply_config", text))
        return {"applied": ["rules"], "restart_required": [], "saved": None, "note": "test"}

    def config_text(self) -> str:
        return self.config

    def deterrent_test(self, name: str | None, seconds: float) -> dict:
        if name not in (None, "siren"):
            raise KeyError(f"no deterrent {name!r}")
        self.calls.append(("deterrent_test", (name, seconds)))
        return {"pulsed": [name or "siren"], "seconds": seconds}

    def mute(self, minutes: float) -> dict:
        self.calls.append(("mute", minutes))
        return {"until": time.time() + minutes * 60}

    def diagnostics(self, cmd: str = "status", args: dict | None = None) -> dict:
        return {"fps": 14.9, "snapshot": b"\xff\xd8 jpeg bytes", "temps": [51.2]}

    def rebirth(self) -> dict:
        return {"firmware": "0.1.1"}

    def retention_purge(self, older_than_days: float | None) -> dict:
        self.calls.append(("retention_purge", older_than_days))
        return {"deleted": 3}

    def legal_hold(self, incident_id: str, hold: bool) -> dict:
        if incident_id != "inc-1":
            raise KeyError(f"no incident {incident_id!r}")
        return {"incident_id": incident_id, "hold": hold}


def with_link(text: str, link: Link) -> str:
    """``text`` with the [link] section the unit runs with (a config/set must keep it)."""
    c = link.cfg
    return text + f'\n[link]\nmqtt = "{c.mqtt}"\nhub_public_key = "{c.hub_public_key}"\n'


def make_unit(url: str, tmp_path, control: Any, pub_path, **cfg) -> Link:
    return Link(
        LinkConfig(mqtt=url, hub_public_key=str(pub_path), reconnect_min_s=0.2, **cfg),
        site="s1",
        unit="u1",
        data_dir=tmp_path / "unit",
        birth=dict(firmware="0.1.0", models=[], config_hash="", capabilities=[]),
        control=control,
    )


@pytest.fixture
def keys(tmp_path):
    signer = Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    other = Signer.generate(tmp_path / "evil.pem", tmp_path / "evil.pub.pem")
    return signer, other, tmp_path / "hub.pub.pem"


@pytest.fixture
def rig(broker, tmp_path, keys):
    signer, other, pub = keys
    control = UnitDouble()
    link = make_unit(broker.url, tmp_path, control, pub)
    link.start()
    hub = HubClient(broker.url, site="s1", signer=signer).connect()
    hub.wait_for(lambda _r: "online" in hub.statuses("u1"))
    yield link, hub, control, signer, other
    hub.close()
    link.stop()
    from_unit = [r for r in hub.received if not r.kind.startswith(("cmd/", "config/set"))]
    bad = [(r.topic, r.problems) for r in from_unit if r.problems]
    assert not bad, f"unit messages that break the contract: {bad[:3]}"


def test_signed_commands_work_and_reply_with_their_id(rig):
    link, hub, control, *_ = rig
    reply = hub.command("u1", "disarm", {"zone": "till"})
    assert reply["ok"] and control.armed["till"] is False
    assert hub.command("u1", "arm", {})["ok"] and control.calls[-1] == ("arm", None)
    r = hub.command("u1", "mute", {"minutes": 15})
    assert r["ok"] and r["result"]["until"] > time.time() + 800
    r = hub.command("u1", "deterrent_test", {"name": "siren", "seconds": 1.5})
    assert r["ok"] and control.calls[-1] == ("deterrent_test", ("siren", 1.5))
    r = hub.command("u1", "legal_hold", {"incident_id": "inc-1"})
    assert r["ok"] and r["result"]["hold"] is True
    assert hub.command("u1", "retention_purge", {"older_than_days": 30})["result"]["deleted"] == 3


def test_no_command_sends_images(rig):
    _link, hub, *_ = rig
    r = hub.command("u1", "diagnostics")
    assert r["ok"] and r["result"]["fps"] == 14.9
    assert r["result"]["snapshot"] == "<13 bytes withheld>"


def test_unit_refusals_say_why(rig):
    _link, hub, control, *_ = rig
    r = hub.command("u1", "arm", {"zone": "nowhere"})
    assert not r["ok"] and r["error"]["code"] == "rejected" and "nowhere" in r["error"]["message"]
    r = hub.command("u1", "mute", {"minutes": "ten"})
    assert r["error"]["code"] == "bad_args" and "minutes" in r["error"]["message"]
    r = hub.command("u1", "mute", {"minutes": 99999})
    assert r["error"]["code"] == "bad_args"
    r = hub.command("u1", "arm", {"zone": "till", "colour": "red"})
    assert r["error"]["code"] == "bad_args" and "colour" in r["error"]["message"]
    r = hub.command("u1", "self_destruct", {})
    assert r["error"]["code"] == "unknown_command"
    assert control.armed == {"unit": True, "till": True}
    # the hub's validator saw the same problems in what the hub itself sent
    flagged = {r.kind for r in hub.received if r.problems}
    assert flagged == {"cmd/mute", "cmd/arm", "cmd/self_destruct"}


def _topic(name: str) -> str:
    return command_topic("vigil", "s1", "u1", name)


def test_unsigned_bad_stale_and_replayed_commands_are_refused(rig):
    link, hub, control, signer, other = rig
    topic = _topic("disarm")
    good = signer.sign(topic, "r-good", {})
    outer = cbor2.loads(good)

    unsigned = cbor2.dumps({"v": 1, "body": outer["body"]})
    hub.send_raw(topic, unsigned)
    assert hub.reply("u1", "r-good")["error"]["code"] == "unsigned"

    forged = other.sign(topic, "r-forged", {})
    hub.send_raw(topic, forged)
    assert hub.reply("u1", "r-forged")["error"]["code"] == "bad_signature"

    # a good signature moved to another command (or unit) does not verify
    moved = signer.sign(_topic("arm"), "r-moved", {})
    hub.send_raw(topic, moved)
    assert hub.reply("u1", "r-moved")["error"]["code"] == "bad_signature"

    stale = signer.sign(topic, "r-stale", {}, ts=time.time() - 600)
    hub.send_raw(topic, stale)
    r = hub.reply("u1", "r-stale")
    assert r["error"]["code"] == "stale" and "window" in r["error"]["message"]
    assert control.armed["unit"] is True

    hub.send_raw(topic, good)  # the genuine one works once
    hub.wait_for(lambda _r: control.armed["unit"] is False)
    control.armed["unit"] = True
    hub.send_raw(topic, good)  # ... and is refused when replayed
    hub.wait_for(lambda _r: [m for m in hub.of("reply") if m.message.get("id") == "r-good"][2:])
    replies = [r.message for r in hub.of("reply") if r.message.get("id") == "r-good"]
    assert [x["ok"] for x in replies] == [False, True, False]
    assert replies[-1]["error"]["code"] == "replayed"
    assert control.armed["unit"] is True
    stats = link.metrics_snapshot()["commands"]
    assert stats["unsigned"] == 1 and stats["bad_signature"] == 2
    assert stats["stale"] == 1 and stats["replayed"] == 1 and stats["ok"] == 1


def test_replay_is_refused_after_a_unit_restart(broker, tmp_path, keys):
    signer, _other, pub = keys
    control = UnitDouble()
    payload = signer.sign(_topic("disarm"), "r1", {})
    with HubClient(broker.url, site="s1") as hub:
        for attempt in range(2):
            link = make_unit(broker.url, tmp_path, control, pub)
            link.start()
            hub.wait_for(lambda _r, n=attempt + 1: hub.statuses("u1").count("online") >= n)
            hub.send_raw(_topic("disarm"), payload)
            hub.wait_for(lambda _r, n=attempt + 1: len(hub.of("reply")) >= n)
            link.stop()
        codes = [r.message.get("error", {}).get("code") for r in hub.of("reply")]
        assert codes == [None, "replayed"]


def test_malformed_oversized_and_wrong_types_get_clear_replies(rig):
    link, hub, control, signer, _ = rig
    topic = _topic("arm")
    cases = {
        b"\xff\x00garbage": "malformed",
        cbor2.dumps([1, 2, 3]): "malformed",
        cbor2.dumps({"v": 2, "body": b"", "sig": b""}): "malformed",
        cbor2.dumps({"v": 1, "body": "text, not bytes"}): "malformed",
        cbor2.dumps({"v": 1, "body": b"x", "sig": b"short"}): "bad_signature",
        b"\x00" * 70000: "too_large",
    }
    for payload, code in cases.items():
        n = len(hub.of("reply"))
        hub.send_raw(topic, payload)
        hub.wait_for(lambda _r, n=n: len(hub.of("reply")) > n)
        reply = hub.of("reply")[-1].message
        assert reply["ok"] is False and reply["error"]["code"] == code, (payload[:20], reply)
        assert reply["id"] is None and reply["error"]["message"]
    # wrong types inside a correctly signed body
    body = cbor2.dumps({"v": 1, "id": "r-types", "ts": "now", "ctr": 5, "args": {}})
    from firmware.link.signing import signing_input

    sig = signer.key.sign(signing_input(topic, body))
    hub.send_raw(topic, cbor2.dumps({"v": 1, "body": body, "sig": sig}))
    r = hub.reply("u1", "r-types")
    assert r["error"]["code"] == "malformed" and "ts" in r["error"]["message"]
    assert hub.command("u1", "disarm")["ok"]  # still working
    assert control.armed["unit"] is False


def test_config_set_validates_applies_and_publishes_state(rig):
    link, hub, control, *_ = rig
    hub.wait_for(lambda _r: hub.of("config/state"))
    bad = GOOD_CONFIG.replace("[0.5, 0.5]]", "]").replace("[0.1, 0.1], ", "")
    r = hub.command("u1", "config/set", {"text": bad})
    assert r["error"]["code"] == "invalid_config"
    assert any(p.startswith("zones[0].polygon") for p in r["error"]["problems"])
    assert control.config == GOOD_CONFIG and not [
        c for c in control.calls if c[0] == "apply_config"
    ]

    renamed = with_link(GOOD_CONFIG.replace('unit_id = "u1"', 'unit_id = "u9"'), link)
    r = hub.command("u1", "config/set", {"text": renamed})
    assert r["error"]["code"] == "rejected" and "u1" in r["error"]["message"]

    control.fail_apply = True
    new = with_link(GOOD_CONFIG.replace("0.5, 0.5", "0.6, 0.6"), link)
    r = hub.command("u1", "config/set", {"text": new})
    assert r["error"]["code"] == "failed" and "restored" in r["error"]["message"]
    assert control.config == GOOD_CONFIG

    control.fail_apply = False
    r = hub.command("u1", "config/set", {"text": new})
    assert r["ok"] and r["result"]["applied"] == ["rules"]
    state = hub.wait_for(
        lambda _r: [s.message for s in hub.of("config/state") if s.message["text"] == new]
    )[-1]
    assert state["config_hash"] == r["result"]["config_hash"]
    birth = hub.wait_for(
        lambda _r: [
            b.message for b in hub.of("birth") if b.message["config_hash"] == state["config_hash"]
        ]
    )
    assert birth and hub.statuses("u1")[-1] == "online"


def test_config_set_that_would_cut_the_link_is_refused(rig, tmp_path):
    """Issue 17: `mqtt = ""` (or another broker, or no/another hub key) applied by config/set
    cut the hub off after the next restart; now it is refused and nothing changes."""
    link, hub, control, _signer, _other = rig
    base = GOOD_CONFIG.replace("0.5, 0.5", "0.6, 0.6")
    pub = link.cfg.hub_public_key
    cases = {
        f'\n[link]\nmqtt = ""\nhub_public_key = "{pub}"\n': "no broker",
        f'\n[link]\nmqtt = "mqtt://10.9.9.9:1883"\nhub_public_key = "{pub}"\n': "10.9.9.9",
        f'\n[link]\nmqtt = "{link.cfg.mqtt}"\n': "hub_public_key would be unset",
        f'\n[link]\nmqtt = "{link.cfg.mqtt}"\nhub_public_key = "{tmp_path / "evil.pub.pem"}"\n': "another key",
        "": "would change",  # no [link] at all: the defaults would replace the unit's link
    }
    for extra, why in cases.items():
        r = hub.command("u1", "config/set", {"text": base + extra})
        assert r["error"]["code"] == "rejected", r
        assert "cut the hub off" in r["error"]["message"] and why in r["error"]["message"], r
    assert control.config == GOOD_CONFIG and not [
        c for c in control.calls if c[0] == "apply_config"
    ]
    # the same key under another path is the same key: accepted
    copy = tmp_path / "copy.pub.pem"
    copy.write_bytes(Path(pub).read_bytes())
    r = hub.command(
        "u1",
        "config/set",
        {"text": base + f'\n[link]\nmqtt = "{link.cfg.mqtt}"\nhub_public_key = "{copy}"\n'},
    )
    assert r["ok"], r


def test_a_counter_near_2_63_does_not_lock_out_later_commands(rig):
    """Issue 17: one signed command with ctr 2^63-1 was accepted, then every later command
    was refused as a replay, for good. Now a counter more than a day ahead is refused."""
    link, hub, control, signer, _ = rig
    topic = _topic("disarm")
    hub.send_raw(topic, signer.sign(topic, "r-huge", {}, ctr=2**63 - 1))
    r = hub.reply("u1", "r-huge")
    assert r["error"]["code"] == "bad_counter" and "microseconds" in r["error"]["message"]
    assert control.armed["unit"] is True
    assert hub.command("u1", "disarm")["ok"] and control.armed["unit"] is False


def test_a_unit_locked_out_by_a_stored_huge_counter_recovers(broker, tmp_path, keys):
    signer, _other, pub = keys
    from firmware.link.outbox import Outbox

    (tmp_path / "unit").mkdir()
    box = Outbox(tmp_path / "unit" / "link-outbox.sqlite", 1000, "interval", 1.0)
    assert box.advance("cmd_ctr", 2**63 - 1)  # what an unbounded unit accepted
    box.close()
    control = UnitDouble()
    link = make_unit(broker.url, tmp_path, control, pub)
    link.start()
    try:
        with HubClient(broker.url, site="s1", signer=signer) as hub:
            hub.wait_for(lambda _r: "online" in hub.statuses("u1"))
            assert hub.command("u1", "disarm")["ok"]
            old = signer.sign(_topic("arm"), "r-old", {}, ctr=time.time_ns() // 1000 - 10**6)
            hub.send_raw(_topic("arm"), old)  # signed a second before the reset: a replay
            assert hub.reply("u1", "r-old")["error"]["code"] == "replayed"
    finally:
        link.stop()


def test_without_a_hub_key_every_command_is_refused(broker, tmp_path, keys):
    signer, _other, _pub = keys
    link = make_unit(broker.url, tmp_path, UnitDouble(), tmp_path / "missing.pem")
    link.start()
    try:
        with HubClient(broker.url, site="s1", signer=signer) as hub:
            hub.wait_for(lambda _r: "online" in hub.statuses("u1"))
            r = hub.command("u1", "arm")
            assert r["error"]["code"] == "no_key" and "missing.pem" in r["error"]["message"]
    finally:
        link.stop()


def test_rebirth_republishes_birth_then_status(rig):
    _link, hub, *_ = rig
    n = len(hub.of("birth"))
    assert hub.command("u1", "rebirth")["ok"]
    hub.wait_for(lambda _r: len(hub.of("birth")) > n)
    assert hub.of("birth")[-1].message["firmware"] == "0.1.1"

    def kinds(_r: object) -> list[str]:
        return [r.kind for r in hub.received if r.kind in ("birth", "status")]

    hub.wait_for(lambda _r: kinds(_r)[-1] == "status")
    assert kinds(None)[-2:] == ["birth", "status"]
