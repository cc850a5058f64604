"""The hub link on a real Mosquitto: CBOR events (QoS 1) through the outbox, birth before
online, the Will, and a broker that is not there at start."""

from __future__ import annotations

import time

import cbor2
import pytest

from firmware.events.records import Event, EventPhase, Severity
from firmware.link import Link
from firmware.link.config import LinkConfig
from firmware.link.outbox import Outbox
from tests.support.broker import MOSQUITTO, MosquittoBroker, free_port
from tools.hub.client import HubClient

BIRTH = dict(
    firmware="0.1.0-test",
    models=[{"name": "nanodet", "sha256": "ab" * 32}],
    config_hash="cd" * 32,
    capabilities=["loitering"],
)


def make_event(i: int, severity: Severity = Severity.NOTICE) -> Event:
    return Event(
        type="loitering",
        rule="loitering",
        phase=EventPhase.INSTANT,
        severity=severity,
        start_time=i / 15,
        start_frame=i,
        time=i / 15,
        frame=i,
        zone="till",
        track_ids=[i % 7],
        explain={"dwell_s": 12.5, "threshold_s": 10.0},
    )


def make_link(url: str, tmp_path, **cfg) -> Link:
    cfg.setdefault("reconnect_min_s", 0.2)
    cfg.setdefault("reconnect_max_s", 1.0)
    return Link(
        LinkConfig(mqtt=url, **cfg),
        site="s1",
        unit="u1",
        data_dir=tmp_path,
        birth=BIRTH,
    )


def test_events_arrive_as_cbor_after_birth_and_online(broker, tmp_path):
    pytest.importorskip("pycddl")
    with HubClient(broker.url, site="s1") as hub:
        link = make_link(broker.url, tmp_path, metrics_interval_s=1)
        link.start()
        link.publish_metrics({"fps": 14.8, "stage_ms": {"inference": 31.0}, "dropped_frames": 2})
        try:
            for i in range(20):
                link.publish_event(make_event(i))
            hub.wait_for(lambda _r: len(hub.events("u1")) >= 20)
            ev = hub.events("u1")
            assert [e["seq"] for e in ev] == list(range(20))
            assert all(e["unit"] == "u1" and e["site"] == "s1" for e in ev)
            assert ev[3]["frame"] == 3 and ev[3]["explain"]["dwell_s"] == 12.5
            # the raw payload really is CBOR that the records decode back
            raw = hub.of("events")[0].payload
            d = cbor2.loads(raw)
            assert (
                Event.from_dict({k: v for k, v in d.items() if k not in ("msg_id", "session")}).rule
                == "loitering"
            )
            kinds = [r.kind for r in hub.received if r.kind in ("birth", "status")]
            assert kinds[:2] == ["birth", "status"]
            birth = hub.of("birth")[0].message
            assert birth["firmware"] == "0.1.0-test" and birth["session"] == link.session
            assert hub.statuses("u1")[-1] == "online"
            hub.wait_for(lambda _r: link.outbox.depth() == 0)
            metrics = hub.wait_for(lambda _r: hub.of("metrics"), timeout=5)[-1].message
            assert metrics["fps"] == 14.8 and metrics["outbox"]["depth"] == 0
            assert metrics["link"]["published"] == 20 and metrics["storage"]["total_bytes"] > 0
        finally:
            link.stop()
        hub.wait_for(lambda _r: hub.statuses("u1")[-1] == "stopped")
        bad = [(r.topic, r.problems) for r in hub.received if r.problems]
        assert not bad, f"messages that break the contract: {bad[:3]}"


def test_broker_unreachable_at_start_then_queued_events_arrive(tmp_path, caplog):
    if MOSQUITTO is None:
        pytest.skip("mosquitto not installed")
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    broker = MosquittoBroker(port=port, persistence=True)
    # the hub's persistent session exists on the broker before the unit ever connects
    broker.start()
    HubClient(url, site="s1", validate=False, client_id="hub", persistent=True).connect().close()
    broker.stop()
    link = make_link(url, tmp_path)
    try:
        with caplog.at_level("WARNING", logger="vigil.link"):
            link.start()  # nothing listens: must not raise
            for i in range(50):
                link.publish_event(make_event(i))
            assert link.outbox.depth() == 50
            broker.start()
            hub = HubClient(url, site="s1", validate=False, client_id="hub", persistent=True)
            with hub:
                hub.wait_for(lambda _r: len(hub.events("u1")) >= 50, timeout=15)
                link.publish_event(make_event(50))
                hub.wait_for(lambda _r: len(hub.events("u1")) >= 51)
                assert [e["frame"] for e in hub.events("u1")] == list(range(51))
                hub.wait_for(lambda _r: link.outbox.depth() == 0)
    finally:
        link.stop()
        broker.__exit__()
    lines = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(lines) == 1, lines  # one clear line, not one per retry
    assert f"127.0.0.1:{port}" in lines[0]


def test_unclean_stop_leaves_the_will_offline(broker, tmp_path):
    with HubClient(broker.url, site="s1", validate=False) as hub:
        link = make_link(broker.url, tmp_path, keepalive_s=5)
        link.start()
        hub.wait_for(lambda _r: "online" in hub.statuses("u1"))
        link.stop(clean=False)
        hub.wait_for(lambda _r: hub.statuses("u1")[-1] == "offline", timeout=10)
        will = hub.of("status")[-1].message
        assert will["session"] == link.session


def test_alert_status_with_reasons(broker, tmp_path):
    with HubClient(broker.url, site="s1", validate=False) as hub:
        link = make_link(broker.url, tmp_path)
        link.start()
        try:
            hub.wait_for(lambda _r: "online" in hub.statuses("u1"))
            link.set_alert(["no_frames", "disk_full"])
            hub.wait_for(lambda _r: hub.statuses("u1")[-1] == "alert")
            assert hub.of("status")[-1].message["reasons"] == ["disk_full", "no_frames"]
            link.clear_alert()
            hub.wait_for(lambda _r: hub.statuses("u1")[-1] == "online")
        finally:
            link.stop()


def test_outbox_full_drops_oldest_lowest_severity_never_alerts(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_events=100)
    for i in range(60):
        box.put(f"a{i}", int(Severity.ALERT), b"alert")
    for i in range(40):
        box.put(f"w{i}", int(Severity.WARN), b"warn")
    box.put("i0", int(Severity.INFO), b"info")  # full: the oldest WARN goes
    assert box.depth() == 100
    ids = [m for _r, m, _p in box.after(0, 1000)]
    assert "w0" not in ids and "i0" in ids
    box.put("i1", int(Severity.INFO), b"info")  # the oldest INFO goes before any WARN
    ids = [m for _r, m, _p in box.after(0, 1000)]
    assert "i0" not in ids and "w1" in ids and "i1" in ids
    for i in range(200):  # alerts are never dropped, even past the bound
        box.put(f"A{i}", int(Severity.ALERT), b"alert")
    ids = [m for _r, m, _p in box.after(0, 10_000)]
    assert sum(m.startswith(("a", "A")) for m in ids) == 260
    dropped = box.dropped()
    assert dropped["warn"] == 40 and dropped["info"] == 2 and "alert" not in dropped
    box.close()
    again = Outbox(tmp_path / "o.sqlite", max_events=100)  # persistent, counts too
    assert again.depth() == 260 and again.dropped()["warn"] == 40
    again.close()


def test_outbox_fsyncs_new_events_in_the_background(tmp_path, monkeypatch):
    synced = []
    real = Outbox.fsync
    monkeypatch.setattr(Outbox, "fsync", lambda self: synced.append(self.depth()) or real(self))
    box = Outbox(tmp_path / "o.sqlite", sync="interval", sync_interval_s=0.1)
    time.sleep(0.3)
    assert synced == []  # nothing new, no fsync
    box.put("e1", int(Severity.NOTICE), b"x")
    deadline = time.monotonic() + 5
    while not synced and time.monotonic() < deadline:
        time.sleep(0.02)
    assert synced and synced[0] == 1
    box.close()
    with pytest.raises(ValueError, match="interval"):
        Outbox(tmp_path / "p.sqlite", sync="sometimes")


def test_outbox_full_raises_an_alert_until_drained(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto not installed")
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    broker = MosquittoBroker(port=port, persistence=True)
    broker.start()  # the hub's persistent session exists before the unit connects
    HubClient(url, site="s1", validate=False, client_id="hub", persistent=True).connect().close()
    broker.stop()
    link = make_link(url, tmp_path, outbox_max_events=100)
    link.start()
    try:
        for i in range(130):
            link.publish_event(make_event(i, Severity.INFO if i % 2 else Severity.ALERT))
        assert link.outbox.depth() == 100 and link.outbox.dropped() == {"info": 30}
        broker.start()
        with HubClient(url, site="s1", validate=False, client_id="hub", persistent=True) as hub:
            hub.wait_for(lambda _r: len(hub.events("u1")) >= 100, timeout=15)
            hub.wait_for(lambda _r: hub.statuses("u1")[-1:] == ["online"])
            alerts = [r.message for r in hub.of("status") if r.message["state"] == "alert"]
            assert alerts and alerts[0]["reasons"] == ["outbox_full"]
            frames = [e["frame"] for e in hub.events("u1")]
            assert set(range(0, 130, 2)) <= set(frames)  # no alert-severity event dropped
            assert frames == sorted(frames) and len(frames) == 100
    finally:
        link.stop()
        broker.__exit__()


def test_a_failing_outbox_never_stops_the_frame_loop(broker, tmp_path, monkeypatch):
    import sqlite3

    with HubClient(broker.url, site="s1", validate=False) as hub:
        link = make_link(broker.url, tmp_path)
        link.start()
        try:
            hub.wait_for(lambda _r: "online" in hub.statuses("u1"))
            real_put = link.outbox.put

            def disk_full(*a, **k):
                raise sqlite3.OperationalError("database or disk is full")

            monkeypatch.setattr(link.outbox, "put", disk_full)
            link.publish_event(make_event(0))  # must not raise into the frame loop
            link.publish_event(make_event(1))
            hub.wait_for(lambda _r: hub.statuses("u1")[-1] == "alert")
            assert hub.of("status")[-1].message["reasons"] == ["outbox_failed"]
            assert link.counters["outbox_write_failed"] == 2
            monkeypatch.setattr(link.outbox, "put", real_put)
            link.publish_event(make_event(2))
            hub.wait_for(lambda _r: hub.statuses("u1")[-1] == "online")
            hub.wait_for(lambda _r: [e["frame"] for e in hub.events("u1")] == [2])
        finally:
            link.stop()
