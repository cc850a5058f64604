"""Cases on the hub: alerts, events of several units and store inputs grouped into one case
per incident; signed evidence packs that name what was altered; the webhook outbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cbor2
import pytest

pytest.importorskip("starlette", reason="hub extra not installed (bash tools/setup.sh)")

from firmware.events.records import Event, EventPhase, Severity  # noqa: E402
from tools.hub.contract import Validator  # noqa: E402
from tools.hub.serve import alerts, cases, evidence  # noqa: E402
from tools.hub.serve.db import HubDB  # noqa: E402
from tools.hub.serve.ingest import Ingest, Message, Store  # noqa: E402
from tools.hub.serve.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, WebhookSender  # noqa: E402

SITE = "shop-7"


class Units:
    """Messages as units send them: CBOR, stamped, per-unit sequence numbers."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = {}
        self.t0 = time.time()

    def event(self, unit: str, at: float, **fields) -> Message:
        ev = Event(start_time=at, start_frame=int(at * 10), time=at, frame=int(at * 10), **fields)
        ev.unit, ev.site = unit, SITE
        ev.seq = self.seq.get(unit, -1) + 1
        self.seq[unit] = ev.seq
        body = ev.to_dict()
        body["msg_id"] = uuid.uuid4().hex
        body["session"] = 1
        return self._msg(unit, "events", body, self.t0 + at)

    def birth(self, unit: str) -> Message:
        from firmware.link import messages

        fields = {
            "firmware": "0.1.0",
            "models": [{"name": "nanodet", "sha256": "ab" * 32}],
            "config_hash": hashlib.sha256(unit.encode()).hexdigest(),
            "capabilities": ["events"],
        }
        return self._msg(unit, "birth", cbor2.loads(messages.birth(1, fields, ["arm"])), self.t0)

    @staticmethod
    def _msg(unit: str, kind: str, body: dict, at: float) -> Message:
        return Message(
            topic=f"vigil/{SITE}/{unit}/{kind}", site=SITE, unit=unit, kind=kind,
            payload=cbor2.dumps(body), received_at=at,
        )  # fmt: skip


def _pipeline(tmp_path: Path, webhook: bool = False) -> tuple[HubDB, Ingest]:
    db = HubDB(tmp_path / "hub.db")
    ingest = Ingest(
        db,
        [Store(), alerts.AlertStage(), cases.CaseStage(window_s=300, webhook=webhook)],
        validator=Validator(),
    )
    return db, ingest


def _incident(u: Units) -> list[Message]:
    """An EAS alarm at the exit seen by unit-a, the dash to the exit seen by unit-b, a door
    contact, plus an unrelated loitering alert at the far end of the store much later."""
    grab = uuid.uuid4().hex
    common = dict(rule="", explain={})
    return [
        u.birth("unit-a"),
        u.birth("unit-b"),
        u.event("unit-b", 10.0, **{**common, "rule": "grab_and_run"}, type="grab_and_run",
                phase=EventPhase.START, severity=Severity.ALERT, zone="exit", track_ids=[4],
                event_id=grab, incident_id="inc-b-1"),
        u.event("unit-a", 11.0, type="store_input", rule="inputs", phase=EventPhase.INSTANT,
                severity=Severity.INFO, zone="exit", explain={"input": "gate", "kind": "eas_gate", "state": "active"}),
        u.event("unit-a", 11.2, type="eas_exit", rule="eas_exit", phase=EventPhase.INSTANT,
                severity=Severity.ALERT, zone="exit", track_ids=[9],
                explain={"input": "gate", "track": 9, "seen": "left through zone", "dt_s": 0.4}),
        u.event("unit-a", 12.0, type="store_input", rule="inputs", phase=EventPhase.INSTANT,
                severity=Severity.INFO, zone="exit", explain={"input": "door", "kind": "door", "state": "active"}),
        u.event("unit-b", 14.0, type="grab_and_run", rule="grab_and_run", phase=EventPhase.END,
                severity=Severity.ALERT, zone="exit", track_ids=[4], event_id=grab, explain={}),
        u.event("unit-a", 2000.0, type="loitering", rule="loitering", phase=EventPhase.START,
                severity=Severity.WARN, zone="perfume", track_ids=[30], explain={"dwell_s": 61.0}),
    ]  # fmt: skip


def test_one_case_spans_two_units_and_two_inputs_and_closes_when_resolved(tmp_path):
    db, ingest = _pipeline(tmp_path)
    u = Units()
    ingest.process(_incident(u))
    assert ingest.stats.invalid == 0
    con = db.read()
    listed = cases.list_cases(con)
    assert len(listed) == 2  # the later loitering elsewhere is its own case
    case = next(c for c in listed if "exit" in c["zones"])
    assert sorted(case["units"]) == ["unit-a", "unit-b"]
    assert case["items"]["store_input"] == 2
    assert len(case["alerts"]) == 2 and case["state"] == "open"
    assert case["clips"] == [{"unit": "unit-b", "incident_id": "inc-b-1", "sha256": None}]
    sealed = u.event("unit-b", 30.0, type="incident", rule="recording", phase=EventPhase.INSTANT,
                     severity=Severity.INFO, incident_id="inc-b-1",
                     explain={"sha256": "ab" * 32, "bytes": 1000})  # fmt: skip
    ingest.process([sealed])  # the unit announces the stored clip's hash
    clips = cases.summary(db.read(), case["id"])["clips"]
    assert clips == [{"unit": "unit-b", "incident_id": "inc-b-1", "sha256": "ab" * 32}]
    for a in case["alerts"]:
        with db.write() as w:
            alerts.change(w, a["id"], "ack", "guard1", "on my way")
            cases.alert_changed(w, a["id"], time.time(), webhook=False)
    assert cases.summary(db.read(), case["id"])["state"] == "open"
    with db.write() as w:
        for a in case["alerts"]:
            alerts.change(
                w, a["id"], "resolve", "manager1", "stock recovered at the door", "stock_recovered"
            )
            cases.alert_changed(w, a["id"], time.time(), webhook=False)
    closed = cases.summary(db.read(), case["id"])
    assert closed["state"] == "closed" and closed["closed_at"] is not None
    db.close()


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    from firmware.link.signing import Signer

    key, pub = tmp_path / "hub-key.pem", tmp_path / "hub-key.pub.pem"
    Signer.generate(key, pub)
    return key, pub


def _exported_case(tmp_path: Path) -> tuple[Path, Path, dict]:
    db, ingest = _pipeline(tmp_path)
    ingest.process(_incident(Units()))
    con = db.read()
    case = next(c for c in cases.list_cases(con) if "exit" in c["zones"])
    with db.write() as w:
        alerts.change(
            w, case["alerts"][0]["id"], "resolve", "manager1", "police called", "police_called"
        )
    key, pub = _keys(tmp_path)
    pack = tmp_path / "PACK.zip"
    m = evidence.export(db.read(), case["id"], key, pack)
    db.close()
    return pack, pub, m


def test_evidence_pack_holds_the_case_and_verifies(tmp_path):
    pack, pub, m = _exported_case(tmp_path)
    assert zipfile.ZipFile(pack).namelist() == ["manifest.json", "manifest.sig", "report.html"]
    assert {e["event"]["type"] for e in m["events"]} == {"grab_and_run", "eas_exit"}
    assert [i["event"]["explain"]["input"] for i in m["store_inputs"]] == ["gate", "door"]
    assert m["units"]["unit-a"]["config_hash"] == hashlib.sha256(b"unit-a").hexdigest()
    assert [(r["user"], r["outcome"]) for r in m["response"]] == [("manager1", "police_called")]
    assert m["clips"][0]["incident_id"] == "inc-b-1"
    report = zipfile.ZipFile(pack).read("report.html").decode()
    assert "eas exit in zone exit" in report and "manager1" in report
    assert evidence.verify(pack, pub)["case"]["id"] == m["case"]["id"]
    assert not (tmp_path / "PACK.zip.partial").exists()


def test_one_changed_byte_anywhere_fails_verification_naming_the_file(tmp_path):
    pack, pub, _ = _exported_case(tmp_path)
    raw = pack.read_bytes()
    names = ("manifest.json", "manifest.sig", "report.html", "zip directory", "not a readable zip",
             "unexpected file")  # fmt: skip
    bad = tmp_path / "bad.zip"
    step = max(1, len(raw) // 700)
    for i in [*range(0, len(raw), step), len(raw) - 1]:
        changed = bytearray(raw)
        changed[i] ^= 0x01
        bad.write_bytes(bytes(changed))
        with pytest.raises(evidence.PackError) as e:
            evidence.verify(bad, pub)
        assert any(n in str(e.value) for n in names), (i, str(e.value))
    (tmp_path / "other").mkdir()
    _, other_pub = _keys(tmp_path / "other")
    with pytest.raises(evidence.PackError, match="signature does not match"):
        evidence.verify(pack, other_pub)


def test_case_cli_lists_exports_and_verifies(tmp_path, capsys):
    from tools.hub.cli import main

    db, ingest = _pipeline(tmp_path)
    ingest.process(_incident(Units()))
    db.close()
    key, pub = _keys(tmp_path)
    assert main(["case", "list", "--db", str(tmp_path / "hub.db")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all("id" in c for c in lines)
    cid = next(c["id"] for c in lines if "exit" in c["zones"])
    out = tmp_path / "p.zip"
    assert (
        main(
            [
                "case",
                "export",
                str(cid),
                "--db",
                str(tmp_path / "hub.db"),
                "--key",
                str(key),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert main(["case", "verify", str(out), "--pub", str(pub)]) == 0
    assert "OK" in capsys.readouterr().out
    data = bytearray(out.read_bytes())
    at = data.rfind(b"eas exit in zone exit")  # in the report, the last member
    data[at] = ord("E")
    out.write_bytes(bytes(data))
    assert main(["case", "verify", str(out), "--pub", str(pub)]) == 1
    assert "report.html" in capsys.readouterr().err
    assert (
        main(
            [
                "case",
                "export",
                "999",
                "--db",
                str(tmp_path / "hub.db"),
                "--key",
                str(key),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "no case 999" in capsys.readouterr().err


class _Receiver(BaseHTTPRequestHandler):
    got: list = []
    secret = b""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        want = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        self.got.append(
            (
                self.headers[DELIVERY_HEADER],
                self.headers[SIGNATURE_HEADER] == want,
                json.loads(body),
            )
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_receiver_down_then_back_gets_every_change_once_in_order(tmp_path):
    secret = b"k" * 32
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens: the receiver is down
    db, ingest = _pipeline(tmp_path, webhook=True)
    sender = WebhookSender(
        db, f"http://127.0.0.1:{port}/cases", secret, first_retry_s=0.5, max_retry_s=8.0
    ).start()
    try:
        ingest.process(_incident(Units()))
        case = next(c for c in cases.list_cases(db.read()) if "exit" in c["zones"])
        with db.write() as w:
            for a in case["alerts"]:
                alerts.change(w, a["id"], "resolve", "manager1", "", "deterred")
                cases.alert_changed(w, a["id"], time.time(), webhook=True)
        queued = sender.pending()
        assert queued >= 5
        time.sleep(60.0)  # the receiving system is down for a minute: retried, nothing dropped
        assert sender.failures >= 5 and sender.pending() == queued
        _Receiver.got, _Receiver.secret = [], secret
        server = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            deadline = time.monotonic() + 20
            while sender.pending() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.3)
        finally:
            server.shutdown()
            server.server_close()
    finally:
        sender.stop()
        db.close()
    got = _Receiver.got
    assert len(got) == queued
    ids = [int(d) for d, _, _ in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # once each, in order
    assert all(ok for _, ok, _ in got)  # HMAC header valid
    exit_changes = [b["change"] for _, _, b in got if b["case"]["id"] == case["id"]]
    assert exit_changes[0] == "opened" and exit_changes[-1] == "closed"
    versions = [b["case"]["version"] for _, _, b in got if b["case"]["id"] == case["id"]]
    assert versions == sorted(versions)


def test_served_hub_groups_a_two_unit_incident_and_posts_it(tmp_path, broker):
    """`vigil-hub serve --store` with a webhook: events of two units over a real Mosquitto
    make one case, seen in /api/cases; resolving it in the console closes the case and the
    receiver gets opened ... closed; the pack exported from the live database verifies."""
    from tests.support.hub import HubProcess, add_user, login, wait
    from tools.hub.client import HubClient

    secret = b"w" * 32
    (tmp_path / "webhook.secret").write_bytes(secret)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.got, _Receiver.secret = [], secret
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    store = tmp_path / "store.toml"
    store.write_text(
        f'[webhook]\nurl = "http://127.0.0.1:{srv.server_address[1]}/cases"\n'
        'secret_file = "webhook.secret"\n'
    )
    db = tmp_path / "hub.sqlite"
    add_user(db, "anna", "manager", tmp_path)
    u = Units()
    try:
        with HubProcess(broker.url, db, "--store", str(store), site=SITE) as hub:
            pub = HubClient(broker.url, site=SITE, validate=False).connect()
            try:
                for m in _incident(u):
                    pub.send_raw(m.topic, m.payload)
                anna, csrf = login(hub.url, "anna")
                listed = wait(
                    lambda: [c for c in anna.get("/api/cases").json() if len(c["units"]) == 2],
                    20, what="case",
                )  # fmt: skip
                case = listed[0]
                for a in case["alerts"]:
                    r = anna.post(f"/api/alerts/{a['id']}/resolve", json={"outcome": "deterred"},
                                  headers={"X-CSRF-Token": csrf})  # fmt: skip
                    assert r.status_code == 200
                got = wait(
                    lambda: [b for _, _, b in _Receiver.got if b["change"] == "closed"], 20,
                    what="webhook closed",
                )  # fmt: skip
                assert got[0]["case"]["id"] == case["id"]
                detail = anna.get(f"/api/cases/{case['id']}").json()
                assert {i["kind"] for i in detail["items_detail"]} >= {"alert", "store_input"}
                assert anna.get("/api/cases/999").status_code == 404
            finally:
                pub.close()
    finally:
        srv.shutdown()
        srv.server_close()
    assert all(ok for _, ok, _ in _Receiver.got)
    key, pub_key = _keys(tmp_path)
    hdb = HubDB(db)
    try:
        evidence.export(hdb.read(), case["id"], key, tmp_path / "pack.zip")
    finally:
        hdb.close()
    assert evidence.verify(tmp_path / "pack.zip", pub_key)["case"]["state"] == "closed"


def test_hub_with_a_forecast_table_refits_from_its_alerts(tmp_path):
    """`[forecast]` in --store: the service's refresher reads the hub's alerts as incidents."""
    pytest.importorskip("statsmodels")
    from tools.hub.serve import config
    from tools.hub.serve.service import Hub

    store = tmp_path / "store.toml"
    store.write_text("[forecast]\nhorizon_days = 2\n")
    cfg = config.build(db=tmp_path / "hub.sqlite", store=str(store), site="+")
    hub = Hub(cfg, validate=False)
    try:
        u = Units()
        u.t0 = time.time() - 30 * 86400
        hub.ingest.process(_incident(u))
        stored = hub.forecast.refresh()
        assert stored is not None
        assert {"exit", "perfume"} <= set(stored.zones)  # the zones of the alerts
        assert stored.expected.shape == (len(stored.zones), 48)  # 2 days, hourly
        assert (stored.low <= stored.high).all() and (stored.expected >= 0).all()  # count quantiles
    finally:
        hub.stop()
