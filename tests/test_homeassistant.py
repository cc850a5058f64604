"""The Home Assistant bridge on a real Mosquitto: a unit replaying the demo clip, discovery
checked against Home Assistant's documented schema, JSON state topics as the unit's events
arrive, button presses turned into signed commands the unit accepts, refusals visible."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import cbor2
import paho.mqtt.client as mqtt
import pytest

from firmware.config import load
from firmware.link.signing import Signer, load_public_key, verify
from firmware.paths import REPO_ROOT
from firmware.unit import RunOptions, apply_overrides, build_unit
from tests.support import ha_schema
from tests.test_run import demo_site
from tools.hub.homeassistant import HomeAssistantBridge, HomeAssistantConfig, load_hub_config

pytest.importorskip("pycddl")

DEVICE = "homeassistant/device/vigil_demo-store_demo-unit/config"
JSON = "vigil-json/demo-store/demo-unit"


class Observer:
    """Sees every message on the broker (as Home Assistant and a sniffer would) and publishes
    like Home Assistant does."""

    def __init__(self, url: str):
        host, port = url.removeprefix("mqtt://").split(":")
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, int(port), 30)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.cond.notify_all()

    def on(self, topic: str) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages if t == topic]

    def last_json(self, topic: str) -> dict | None:
        got = self.on(topic)
        return json.loads(got[-1]) if got and got[-1] else None

    def wait(self, pred, timeout: float = 20.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = pred()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what} not seen within {timeout} s")
                self.cond.wait(min(left, 0.2))

    def press(self, topic: str, payload: str = "PRESS") -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clip_unit(broker, tmp_path, mock_pins):
    """The demo unit replaying its clip, with a hub key and metrics every second."""
    signer = Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    site = demo_site(tmp_path).read_text()
    site = site.replace(
        '[link]\nmqtt = ""',
        f'[link]\nmqtt = "{broker.url}"\nhub_public_key = "{tmp_path / "hub.pub.pem"}"\n'
        "reconnect_min_s = 0.2\nmetrics_interval_s = 1",
    )
    (tmp_path / "site.toml").write_text(site)
    loaded = apply_overrides(load(tmp_path / "site.toml"), RunOptions())
    unit = build_unit(loaded, RunOptions(loop=True, pin_factory=mock_pins, watchdog=False))
    thread = threading.Thread(target=unit.run, daemon=True)
    thread.start()
    try:
        yield unit, signer, tmp_path, mock_pins
    finally:
        unit.loop.stop("test over")
        thread.join(30)


def _unsigned(topic: str, args: dict) -> bytes:
    body = cbor2.dumps({"v": 1, "id": "imitation-1", "ts": time.time(), "ctr": 1, "args": args})
    return cbor2.dumps({"v": 1, "body": body})


def test_clip_unit_in_home_assistant(broker, clip_unit):
    unit, signer, tmp_path, pins = clip_unit
    ha = Observer(broker.url)
    bridge = HomeAssistantBridge(broker.url, "demo-store", signer=signer).start()
    try:
        bridge.wait_connected()
        # discovery: one device message that parses, checks out, and names its availability
        # (announced at the unit's first message, updated once its config/state is seen)
        raw = ha.wait(
            lambda: [p for p in ha.on(DEVICE) if b"people_display" in p], what="device discovery"
        )[-1]
        assert ha_schema.problems(DEVICE, raw) == []
        disc = json.loads(raw)
        cmps = disc["cmps"]
        for cid in ("people_display", "people_exit", "fps", "outbox_depth", "cpu_temperature",
                    "online", "camera_problem", "rule_loitering", "rule_fight", "events",
                    "armed", "armed_display", "deterrent_test_light", "mute"):  # fmt: skip
            assert cid in cmps, cid
        assert cmps["events"]["p"] == "event" and "loitering" in cmps["events"]["event_types"]
        avail = ha_schema.availability_topics(raw)
        assert f"{JSON}/availability" in avail and bridge.core.bridge_availability in avail
        ha.wait(lambda: ha.on(f"{JSON}/availability")[-1:] == [b"online"], what="online")
        assert ha.on(bridge.core.bridge_availability)[-1] == b"online"

        # state topics follow the unit's events: loitering in the display zone starts
        fired = ha.wait(
            lambda: [json.loads(p) for p in ha.on(f"{JSON}/event")],
            timeout=45,
            what="an event for the event entity",
        )[0]
        assert fired["event_type"] == "loitering" and fired["zone"] == "display"
        assert fired["severity"] in ("notice", "warn", "alert") and fired["explain"]
        assert fired["event_type"] in cmps["events"]["event_types"]
        state_topic = cmps["rule_loitering"]["state_topic"]
        tpl = cmps["rule_loitering"]["value_template"]
        on = ha.wait(
            lambda: [p for p in ha.on(state_topic) if ha_schema.render(tpl, p) == "ON"],
            what="loitering binary sensor ON",
        )[0]
        attrs = cmps["rule_loitering"]["json_attributes_template"]
        shown = json.loads(ha_schema.render(attrs, on))
        assert shown["zone"] == "display" and shown["severity"] and shown["explain"]
        # the JSON mirror carries the contract's event, key for key
        mirrored = json.loads(ha.wait(lambda: ha.on(f"{JSON}/events"))[0])
        cbor = [cbor2.loads(p) for p in ha.on("vigil/demo-store/demo-unit/events")]
        assert set(mirrored) == set(cbor[0]) and mirrored["msg_id"] in {e["msg_id"] for e in cbor}
        # sensors read the metrics mirror: people per zone, fps, outbox depth
        metrics = ha.wait(lambda: ha.on(f"{JSON}/metrics"), what="metrics mirror")[-1]
        people = ha_schema.render(cmps["people_display"]["value_template"], metrics)
        assert people.isdigit(), people
        assert float(ha_schema.render(cmps["fps"]["value_template"], metrics)) > 0
        assert ha_schema.render(cmps["outbox_depth"]["value_template"], metrics).isdigit()

        # PRESS on the deterrent-test button -> a signed command the unit accepts
        ha.press(cmps["deterrent_test_light"]["command_topic"])
        cmd_topic = "vigil/demo-store/demo-unit/cmd/deterrent_test"
        sent = cbor2.loads(ha.wait(lambda: ha.on(cmd_topic), what="signed command")[0])
        key = load_public_key(tmp_path / "hub.pub.pem")
        assert verify(key, cmd_topic, sent["body"], sent["sig"])
        rid = cbor2.loads(sent["body"])["id"]
        replies = lambda: [  # noqa: E731
            r for r in map(cbor2.loads, ha.on("vigil/demo-store/demo-unit/reply")) if r["id"] == rid
        ]
        reply = ha.wait(replies, what="the unit's reply")[0]
        assert reply["ok"] is True, reply
        assert reply["result"]["tested"] == ["light"]
        outcome = ha.wait(lambda: ha.last_json(f"{JSON}/command"), what="command outcome")
        assert outcome["event_type"] == "ok" and outcome["request_id"] == rid
        assert outcome["summary"] == "deterrent_test: ok"

        # an unsigned imitation sent straight to the unit is refused
        ha.client.publish(cmd_topic, _unsigned(cmd_topic, {"name": "light"}), qos=1)
        refusal = ha.wait(
            lambda: [
                r
                for r in map(cbor2.loads, ha.on("vigil/demo-store/demo-unit/reply"))
                if r["id"] == "imitation-1"
            ],
            what="the refusal",
        )[0]
        assert refusal["ok"] is False and refusal["error"]["code"] == "unsigned"

        # switching a zone's arming off: a signed disarm, and the reply updates the switch
        sw = cmps["armed_display"]
        ha.press(sw["command_topic"], "OFF")
        ha.wait(
            lambda: ha_schema.render(sw["value_template"], ha.on(sw["state_topic"])[-1]) == "OFF",
            what="zone switch off",
        )
        zones = unit.loop.s.engine.env.zones
        assert not zones.armed[zones.index["display"]]
        assert bridge.core.invalid == 0  # every unit message met the contract
    finally:
        bridge.stop()
        ha.close()
    assert ha.on(bridge.core.bridge_availability)[-1] == b"offline"


def test_refused_commands_are_visible_and_restricted(broker, tmp_path):
    """A command the unit refuses (wrong hub key) and one the hub config forbids both show on
    the Commands event entity / Last command sensor; forbidden entities are not offered."""
    from tests.test_link_commands import UnitDouble, make_unit

    Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    wrong = Signer.generate(tmp_path / "evil.pem", tmp_path / "evil.pub.pem")
    link = make_unit(broker.url, tmp_path, UnitDouble(), tmp_path / "hub.pub.pem")
    link.start()
    ha = Observer(broker.url)
    base = "vigil-json/s1/u1"
    device = "homeassistant/device/vigil_s1_u1/config"
    try:
        bridge = HomeAssistantBridge(broker.url, "s1", signer=wrong).start()
        try:
            disc = ha.wait(lambda: [json.loads(p) for p in ha.on(device) if b"armed_till" in p])
            sensor = disc[-1]["cmps"]["last_command"]
            ha.wait(lambda: ha.on(f"{base}/availability")[-1:] == [b"online"])
            ha.press(f"{base}/set/armed/till", "OFF")
            outcome = ha.wait(lambda: ha.last_json(f"{base}/command"), what="outcome")
            assert outcome["event_type"] == "refused" and outcome["code"] == "bad_signature"
            shown = ha_schema.render(sensor["value_template"], ha.on(f"{base}/command")[-1])
            assert shown == "disarm: refused (bad_signature)"
            ha.press(f"{base}/set/armed/nowhere", "OFF")  # no such zone: refused by the bridge
            ha.wait(lambda: ha.last_json(f"{base}/command")["code"] == "bad_request")
        finally:
            bridge.stop()

        cfg = HomeAssistantConfig(discovery="entity", allowed_commands=["deterrent_test"])
        n = len(ha.messages)
        bridge = HomeAssistantBridge(broker.url, "s1", signer=wrong, cfg=cfg).start()
        try:
            node = "homeassistant/sensor/vigil_s1_u1/fps/config"
            ha.wait(lambda: ha.on(node), what="per-entity discovery")
            ha.wait(lambda: ha.on("homeassistant/event/vigil_s1_u1/events/config"))
            configs = [
                (t, p) for t, p, _ in ha.messages[n:] if t.startswith("homeassistant/") and p
            ]
            for topic, payload in configs:
                assert ha_schema.problems(topic, payload) == [], topic
            assert not [t for t, _ in configs if t.startswith("homeassistant/switch/")]
            ha.press(f"{base}/set/armed", "ON")
            out = ha.wait(lambda: ha.last_json(f"{base}/command")["code"] == "not_allowed")
            assert out
            assert "allowed_commands" in ha.last_json(f"{base}/command")["message"]
        finally:
            bridge.stop()
    finally:
        ha.close()
        link.stop()


def test_hub_config_is_validated(tmp_path):
    good = tmp_path / "hub.toml"
    good.write_text('[homeassistant]\nallowed_commands = ["mute"]\nmute_minutes = 5\n')
    cfg = load_hub_config(good)
    assert cfg.allowed_commands == ["mute"] and cfg.mute_minutes == 5
    assert load_hub_config(None).allowed_commands == ["arm", "disarm", "deterrent_test", "mute"]
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[homeassistant]\nallowed_commands = ["config/set"]\nmute_minutes = 0\ncolour = 1\n'
    )
    with pytest.raises(ValueError) as e:
        load_hub_config(bad)
    text = str(e.value)
    for key in ("homeassistant.allowed_commands.0", "homeassistant.mute_minutes", "colour"):
        assert key in text and str(bad) in text
    with pytest.raises(ValueError, match="not TOML"):
        (tmp_path / "broken.toml").write_text("[homeassistant\n")
        load_hub_config(tmp_path / "broken.toml")


UNIT_PROCESS = """
import sys, time
from pathlib import Path
from firmware.link import Link
from firmware.link.config import LinkConfig
from tests.test_link import BIRTH

url, unit, data_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
link = Link(LinkConfig(mqtt=url, reconnect_min_s=0.2, keepalive_s=5), site="s1", unit=unit,
            data_dir=data_dir, birth=BIRTH)
link.start()
while True:
    time.sleep(1)
"""
KEEPALIVE_S = 5


def _unit_process(url: str, unit: str, data_dir) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", UNIT_PROCESS, url, unit, str(data_dir)], env=env, cwd=REPO_ROOT
    )


def test_units_appearing_dying_and_returning_show_in_availability(broker, tmp_path):
    ha = Observer(broker.url)
    bridge = HomeAssistantBridge(broker.url, "s1", signer=None).start()
    procs = {}
    avail = {u: f"vigil-json/s1/{u}/availability" for u in ("u1", "u2")}
    device = {u: f"homeassistant/device/vigil_s1_{u}/config" for u in ("u1", "u2")}
    try:
        bridge.wait_connected()
        procs["u1"] = _unit_process(broker.url, "u1", tmp_path / "u1")
        ha.wait(lambda: ha.on(avail["u1"])[-1:] == [b"online"], what="u1 online")
        assert ha_schema.problems(device["u1"], ha.on(device["u1"])[-1]) == []
        assert avail["u1"] in ha_schema.availability_topics(ha.on(device["u1"])[-1])
        assert not ha.on(device["u2"])
        procs["u2"] = _unit_process(broker.url, "u2", tmp_path / "u2")  # a unit appears
        ha.wait(lambda: ha.on(avail["u2"])[-1:] == [b"online"], what="u2 online")
        assert ha_schema.problems(device["u2"], ha.on(device["u2"])[-1]) == []

        procs["u1"].send_signal(signal.SIGKILL)  # gone without a word: the broker sends its Will
        killed = time.monotonic()
        procs["u1"].wait(10)
        ha.wait(lambda: ha.on(avail["u1"])[-1:] == [b"offline"], timeout=20, what="u1 offline")
        assert time.monotonic() - killed <= 1.5 * KEEPALIVE_S + 1.0  # within the Will's delay
        assert ha.on(avail["u2"])[-1] == b"online"
        ha.wait(lambda: ha.last_json("vigil-json/s1/u1/state")["online"] == "OFF")
        state = ha.last_json("vigil-json/s1/u1/state")
        assert state["status"] == "offline"

        procs["u1"] = _unit_process(broker.url, "u1", tmp_path / "u1")  # back again
        ha.wait(lambda: ha.on(avail["u1"])[-1:] == [b"online"], what="u1 back online")
        ha.wait(
            lambda: ha.last_json("vigil-json/s1/u1/state")["session"] == state["session"] + 1,
            what="the new session in the state topic",
        )
        assert ha.last_json("vigil-json/s1/u1/state")["online"] == "ON"

        # Home Assistant restarts: its birth message makes the bridge announce everything again
        before = {u: len(ha.on(device[u])) for u in device}
        ha.press("homeassistant/status", "online")
        ha.wait(lambda: all(len(ha.on(device[u])) > before[u] for u in device), what="re-announce")
    finally:
        for p in procs.values():
            p.kill()
            p.wait(10)
        bridge.stop()
        ha.close()


def _cbor(**m) -> bytes:
    return cbor2.dumps({"v": 1, **m})


def _event(i: int, rule: str, phase: str, session: int = 1, severity: int = 1) -> bytes:
    return _cbor(
        msg_id=f"{i:032x}", session=session, seq=i, site="s1", unit="u1", event_id=f"e{rule}",
        type=rule, rule=rule, phase=phase, severity=severity,
        severity_name=["info", "notice", "warn", "alert"][severity], start_time=0.0,
        start_frame=0, time=float(i), frame=i, end_time=None, end_frame=None, zone="till",
        track_ids=[3], explain={"people": 2}, incident_id=None,
    )  # fmt: skip


def test_core_follows_situations_and_config_changes():
    """The bridge's logic over the contract's messages (each one CDDL-checked): situations
    open and close the rule sensors, one-offs are held, an old session's backlog changes
    nothing, duplicates are dropped, a removed zone's entities are removed."""
    from tools.hub.contract import Validator
    from tools.hub.homeassistant import BridgeCore

    sent: list[tuple[str, str | bytes, bool]] = []
    core = BridgeCore(
        lambda t, p, q, r: sent.append((t, p, r)), None, site="s1", validator=Validator()
    )
    base, device = "vigil/s1/u1", "homeassistant/device/vigil_s1_u1/config"
    text = '[site]\nsite_id = "s1"\nunit_id = "u1"\n\n[[zones]]\nname = "till"\npolygon = [[0,0],[1,0],[1,1]]\n'
    door = text + '\n[[zones]]\nname = "door"\npolygon = [[0,0],[1,0],[0,1]]\n'
    core.on_message(f"{base}/config/state", _cbor(time=1.0, config_hash="x" * 64, text=door))
    core.on_message(f"{base}/status", _cbor(state="online", session=2, time=1.0))
    last = lambda topic: [p for t, p, _ in sent if t == topic][-1]  # noqa: E731
    assert "people_door" in json.loads(last(device))["cmps"]
    state = lambda: json.loads(last("vigil-json/s1/u1/state"))  # noqa: E731

    core.on_message(f"{base}/events", _event(1, "fight", "start", session=2, severity=3))
    assert state()["rules"]["fight"]["active"] == "ON"
    assert state()["rules"]["fight"]["severity"] == "alert"
    fired = [json.loads(p) for t, p, _ in sent if t == "vigil-json/s1/u1/event"]
    assert [f["event_type"] for f in fired] == ["fight"]
    core.on_message(f"{base}/events", _event(1, "fight", "start", session=2))  # duplicate
    core.on_message(f"{base}/events", _event(2, "fight", "end", session=2))
    assert state()["rules"]["fight"]["active"] == "OFF"
    core.on_message(f"{base}/events", _event(3, "loitering", "start", session=1))  # old backlog
    assert state()["rules"]["loitering"]["active"] == "OFF"
    core.on_message(f"{base}/events", _event(4, "grab_and_run", "instant", session=2))
    assert state()["rules"]["grab_and_run"]["active"] == "ON"
    core.tick(time.time() + core.cfg.instant_hold_s + 1)
    assert state()["rules"]["grab_and_run"]["active"] == "OFF"
    assert len([t for t, _, _ in sent if t == "vigil-json/s1/u1/events"]) == 4  # mirrored once

    n = len(sent)
    core.on_message(f"{base}/config/state", _cbor(time=2.0, config_hash="y" * 64, text=text))
    updates = [json.loads(p) for t, p, _ in sent[n:] if t == device]
    assert updates[0]["cmps"]["people_door"] == {"p": "sensor"}  # removed, as HA's docs say
    assert "people_door" not in updates[-1]["cmps"] and "people_till" in updates[-1]["cmps"]

    core.on_message(f"{base}/metrics", _cbor(session=2, time=3.0, outbox="not a map"))
    assert core.invalid == 1  # breaks the contract: not mirrored
    assert not [t for t, _, _ in sent if t == "vigil-json/s1/u1/metrics"]


def test_vigil_hub_homeassistant_runs_and_stops(broker, tmp_path):
    """The standalone runner: announces a unit, says offline on SIGTERM; a bad config is
    refused with its key before anything connects."""
    from tests.test_link_commands import UnitDouble, make_unit

    Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    (tmp_path / "bad.toml").write_text('[homeassistant]\ndiscovery = "both"\n')
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cli = [sys.executable, "-m", "tools.hub.cli", "homeassistant", "--mqtt", broker.url,
           "--site", "s1", "--key", str(tmp_path / "hub.pem")]  # fmt: skip
    bad = subprocess.run([*cli, "--config", str(tmp_path / "bad.toml")], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "homeassistant.discovery" in bad.stderr
    link = make_unit(broker.url, tmp_path, UnitDouble(), tmp_path / "hub.pub.pem")
    link.start()
    ha = Observer(broker.url)
    proc = subprocess.Popen(cli, env=env, cwd=REPO_ROOT)
    try:
        ha.wait(lambda: ha.on("homeassistant/device/vigil_s1_u1/config"), timeout=30)
        ha.wait(lambda: ha.on("vigil-json/_bridge/s1/availability")[-1:] == [b"online"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert ha.on("vigil-json/_bridge/s1/availability")[-1] == b"offline"
    finally:
        proc.kill()
        ha.close()
        link.stop()


def test_vigil_hub_serve_homeassistant_mounts_the_bridge(broker, tmp_path):
    """`vigil-hub serve --homeassistant`: the hub service announces the units to Home
    Assistant with its own key, and its [homeassistant] table comes from --store."""
    pytest.importorskip("starlette")
    from tests.support.hub import HubProcess
    from tests.test_link_commands import UnitDouble, make_unit

    Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    store = tmp_path / "store.toml"
    store.write_text('[homeassistant]\ndiscovery_prefix = "ha-test"\n')
    link = make_unit(broker.url, tmp_path, UnitDouble(), tmp_path / "hub.pub.pem")
    link.start()
    ha = Observer(broker.url)
    try:
        with HubProcess(broker.url, tmp_path / "hub.sqlite", "--homeassistant", "--store",
                        str(store), "--key", str(tmp_path / "hub.pem"), site="s1"):  # fmt: skip
            ha.wait(lambda: ha.on("ha-test/device/vigil_s1_u1/config"), timeout=30)
            ha.wait(lambda: ha.on("vigil-json/_bridge/s1/availability")[-1:] == [b"online"])
    finally:
        ha.close()
        link.stop()
