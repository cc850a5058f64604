"""`vigil-hub serve` end to end: a real unit replaying the demo clip over a real Mosquitto,
the hub as a real process on a real SQLite file: alerts in the API and the live stream,
the alert workflow, a hub crash in the middle, signed commands, a killed unit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from firmware.link.signing import Signer
from tests.support.hub import REPO, HubProcess, add_user, login, sse_events, wait
from tests.test_run import demo_site
from tools.hub.client import HubClient

pytest.importorskip("starlette")


def unit_site(tmp_path, broker) -> str:
    text = demo_site(tmp_path).read_text()
    link = (
        f'[link]\nmqtt = "{broker.url}"\nkeepalive_s = 5\nreconnect_min_s = 0.2\n'
        f'hub_public_key = "{tmp_path / "hub.pub.pem"}"\n'
    )
    text = text.replace('[link]\nmqtt = ""', link + "# ")
    (tmp_path / "site.toml").write_text(text)
    return str(tmp_path / "site.toml")


def start_unit(site: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "GPIOZERO_PIN_FACTORY": "mock"}
    return subprocess.Popen(
        [sys.executable, "-m", "firmware.cli", "run", "-c", site, "--loop", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path, broker, mock_pins):
    """A unit, its hub (manager anna, guard gus) and a plain watcher of the site."""
    Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    site = unit_site(tmp_path, broker)
    store_file = tmp_path / "store.toml"
    store_file.write_text('[alerts]\nmin_severity = "notice"\n\n[[units]]\nunit = "demo-unit"\n')
    db = tmp_path / "hub.sqlite"
    add_user(db, "anna", "manager", tmp_path)
    add_user(db, "gus", "guard", tmp_path)
    hub = HubProcess(
        broker.url, db, "--key", str(tmp_path / "hub.pem"), "--store", str(store_file)
    ).start()
    watcher = HubClient(broker.url, site="demo-store", validate=False).connect()
    unit = start_unit(site)
    try:
        yield hub, unit, watcher
    finally:
        if unit.poll() is None:
            unit.send_signal(signal.SIGTERM)
            unit.wait(30)
        watcher.close()
        hub.stop()


class Stream(threading.Thread):
    """Collects the live stream in the background."""

    def __init__(self, client, headers=None):
        super().__init__(daemon=True)
        self.client, self.headers, self.items = client, headers, []

    def run(self) -> None:
        try:
            for item in sse_events(self.client, headers=self.headers):
                self.items.append(item)
        except Exception:
            pass

    def of(self, kind: str) -> list:
        return [d for k, d, _ in self.items if k == kind]


def test_alerts_workflow_restart_and_offline(store, tmp_path):
    hub, unit, watcher = store
    anna, anna_csrf = login(hub.url, "anna")
    gus, gus_csrf = login(hub.url, "gus")
    live = Stream(gus)
    live.start()
    units = wait(lambda: anna.get("/api/units").json(), 60, what="unit registered")
    wait(lambda: anna.get("/api/units").json()[0]["state"] == "online", 60, what="online")
    u = anna.get("/api/units").json()[0]
    assert u["unit"] == "demo-unit" and u["site"] == "demo-store" and u["known"]
    assert u["firmware"] and u["models"] and u["last_seen"] > time.time() - 60
    assert units

    floor = wait(lambda: anna.get("/api/floor").json()["units"][0]["zones"], 30, what="zones")
    assert {z["name"] for z in floor} == {"display", "exit"}  # sketched from config/state
    assert all(len(z["polygon"]) >= 3 for z in floor)

    opened = wait(lambda: anna.get("/api/alerts?state=open").json(), 90, what="an alert")
    a = opened[0]
    for key in ("id", "event_id", "type", "unit", "zone", "severity", "state", "opened_at"):
        assert key in a, key
    assert (
        a["unit"] == "demo-unit" and a["state"] == "open" and a["history"][0]["action"] == "opened"
    )
    assert a["explain_text"].startswith(a["type"])
    wait(lambda: any(x["id"] == a["id"] for x in live.of("alert")), 10, what="alert in stream")
    assert live.of("event"), "events flow in the stream too"

    # guard acknowledges; may not resolve
    r = gus.post(f"/api/alerts/{a['id']}/ack", json={"note": "on my way"},
                 headers={"X-CSRF-Token": gus_csrf})  # fmt: skip
    assert r.status_code == 200, r.text
    ack = r.json()["history"][-1]
    assert (ack["user"], ack["action"], ack["note"]) == ("gus", "acknowledged", "on my way")
    assert abs(ack["at"] - time.time()) < 30 and r.json()["state"] == "acknowledged"
    r = gus.post(f"/api/alerts/{a['id']}/resolve", json={"note": "x", "outcome": "deterred"},
                 headers={"X-CSRF-Token": gus_csrf})  # fmt: skip
    assert r.status_code == 403
    r = anna.post(f"/api/alerts/{a['id']}/resolve", json={"note": "left", "outcome": "nonsense"},
                  headers={"X-CSRF-Token": anna_csrf})  # fmt: skip
    assert r.status_code == 409 and "outcome" in r.json()["error"]
    r = anna.post(f"/api/alerts/{a['id']}/resolve",
                  json={"note": "customer left", "outcome": "deterred"},
                  headers={"X-CSRF-Token": anna_csrf})  # fmt: skip
    assert r.status_code == 200
    done = r.json()
    assert done["state"] == "resolved" and done["outcome"] == "deterred"
    h = done["history"][-1]
    assert (h["user"], h["action"], h["note"], h["outcome"]) == (
        "anna",
        "resolved",
        "customer left",
        "deterred",
    )
    assert [x["id"] for x in anna.get("/api/alerts?state=resolved").json()] == [a["id"]]

    # a signed command through the console, logged with the user
    r = anna.post("/api/units/demo-unit/commands", json={"command": "disarm",
                  "args": {"zone": "display"}}, headers={"X-CSRF-Token": anna_csrf})  # fmt: skip
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    r = anna.post("/api/units/demo-unit/commands", json={"command": "arm"},
                  headers={"X-CSRF-Token": anna_csrf})  # fmt: skip
    assert r.json()["ok"] is True
    log = anna.get("/api/actions").json()
    assert [(x["user"], x["command"]) for x in log][:2] == [("anna", "arm"), ("anna", "disarm")]
    assert gus.post("/api/units/demo-unit/commands", json={"command": "arm"},
                    headers={"X-CSRF-Token": gus_csrf}).status_code == 403  # fmt: skip
    r = anna.post("/api/units/no-such-unit/commands", json={"command": "arm"},
                  headers={"X-CSRF-Token": anna_csrf})  # fmt: skip
    assert r.status_code == 404 and "no-such-unit" in r.json()["error"]

    # the hub crashes; the unit keeps sending; the broker keeps the hub's session
    before = anna.get("/api/events?limit=1").json()[0]["id"]
    hub.kill()
    time.sleep(4)
    hub.start()
    anna, anna_csrf = login(hub.url, "anna")
    resumed = Stream(anna, headers={"Last-Event-ID": str(before)})
    resumed.start()
    wait(lambda: len(resumed.of("event")) > 5, 30, what="stream resumed")
    ids = [e["id"] for e in resumed.of("event")]
    assert ids[0] == before + 1 and ids == sorted(ids)  # from where it stopped, in order
    got = anna.get(f"/api/alerts/{a['id']}").json()
    assert got["state"] == "resolved" and [x["user"] for x in got["history"] if x["user"]] == [
        "gus",
        "anna",
    ]

    # the unit is killed: offline within the Will's delay (1.5 x keepalive 5 s)
    unit.send_signal(signal.SIGKILL)
    unit.wait(10)
    t0 = time.monotonic()
    wait(lambda: anna.get("/api/units").json()[0]["state"] == "offline", 20, what="offline")
    assert time.monotonic() - t0 < 15
    # nothing the broker delivered to the watcher is missing from the hub's database
    seen = {e["msg_id"] for e in watcher.events()}
    stored = wait(
        lambda: (lambda s: s if seen <= s else None)(
            {e["msg_id"] for e in anna.get("/api/events?limit=1000").json()}
        ),
        30,
        what="every event stored",
    )
    assert seen <= stored
    health = anna.get("/api/health").json()
    assert health["invalid_total"] == 0 and health["db"]["error"] is None
