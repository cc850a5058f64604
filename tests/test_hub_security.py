"""The console's security: 401/403, CSRF, login rate limit, hashed passwords, cookie flags,
TLS, oversized requests; invalid MQTT messages counted, never crashing the hub."""

from __future__ import annotations

import os
import ssl
import time

import cbor2
import httpx
import pytest

from tests.support.broker import MOSQUITTO, MosquittoBroker
from tests.support.hub import PASSWORD, HubProcess, add_user, login, run_hub, wait
from tests.support.tls import TestCA
from tools.hub.client import HubClient

pytest.importorskip("starlette")
if MOSQUITTO is None:
    pytest.skip("mosquitto not installed", allow_module_level=True)


def event(seq: int, unit: str = "u1", severity: int = 2, **kw) -> bytes:
    ev = dict(
        v=1, msg_id=os.urandom(16).hex(), session=1, seq=seq, site="demo-store", unit=unit,
        event_id=f"e{seq}", type="loitering", rule="loitering", phase="start",
        severity=severity, severity_name=["info", "notice", "warn", "alert"][severity],
        start_time=1.0, start_frame=1, time=1.0, frame=1, end_time=None, end_frame=None,
        zone="till", track_ids=[3], explain={"dwell_s": 12.5, "threshold_s": 5.0},
        incident_id=None,
    )  # fmt: skip
    ev.update(kw)
    return cbor2.dumps(ev)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One broker, one hub with a guard, a manager and an admin, and a publisher."""
    tmp = tmp_path_factory.mktemp("hub")
    with MosquittoBroker() as broker:
        db = tmp / "hub.sqlite"
        for name, role in (("gus", "guard"), ("anna", "manager"), ("ada", "admin")):
            add_user(db, name, role, tmp)
        with HubProcess(broker.url, db) as hub:
            pub = HubClient(broker.url, site="demo-store", validate=False).connect()
            try:
                yield hub, pub, db
            finally:
                pub.close()


def test_unauthenticated_requests_get_401(site):
    hub, _, _ = site
    c = httpx.Client(base_url=hub.url)
    for path in ("/api/units", "/api/alerts", "/api/events", "/api/stream", "/api/health",
                 "/api/alerts/1", "/api/floor", "/api/footfall", "/api/users", "/api/me"):  # fmt: skip
        r = c.get(path)
        assert r.status_code == 401, path
        assert "login" in r.json()["error"]
    assert c.post("/api/alerts/1/ack", json={}).status_code == 401
    assert (
        c.post("/api/login", json={"user": "gus", "password": "wrong password!"}).status_code == 401
    )
    assert c.get("/").status_code == 200  # the console page itself (it shows the login form)


def test_roles_csrf_and_the_alert_workflow(site):
    hub, pub, _ = site
    pub.send_raw("vigil/demo-store/u1/events", event(0))
    gus, gus_csrf = login(hub.url, "gus")
    anna, anna_csrf = login(hub.url, "anna")
    a = wait(lambda: gus.get("/api/alerts?state=open&unit=u1").json(), 20, what="alert")[0]
    assert a["explain_text"] == "loitering in zone till: dwell 12.5 s, threshold 5 s"
    path = f"/api/alerts/{a['id']}"
    assert gus.post(path + "/ack", json={"note": "x"}).status_code == 403  # no CSRF token
    r = gus.post(path + "/ack", json={"note": "x"}, headers={"X-CSRF-Token": anna_csrf})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]  # another session's token
    assert gus.get(path).json()["state"] == "open"  # nothing changed
    r = gus.post(
        path + "/resolve", json={"outcome": "deterred"}, headers={"X-CSRF-Token": gus_csrf}
    )
    assert r.status_code == 403 and "manager" in r.json()["error"]
    assert gus.post(path + "/ack", json={}, headers={"X-CSRF-Token": gus_csrf}).status_code == 200
    r = gus.post(path + "/ack", json={}, headers={"X-CSRF-Token": gus_csrf})
    assert r.status_code == 409  # already acknowledged
    r = gus.post(path + "/escalate", json={"note": "need help"}, headers={"X-CSRF-Token": gus_csrf})
    assert r.json()["escalated"] == 1
    r = anna.post(path + "/resolve", json={"outcome": "false_alarm", "note": "staff"},
                  headers={"X-CSRF-Token": anna_csrf})  # fmt: skip
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    assert [h["action"] for h in r.json()["history"]] == [
        "opened", "acknowledged", "escalated", "resolved"
    ]  # fmt: skip
    assert gus.get("/api/users").status_code == 403 and anna.get("/api/users").status_code == 403
    assert gus.post("/api/logout", headers={"X-CSRF-Token": gus_csrf}).status_code == 200
    assert gus.get("/api/units").status_code == 401  # the session is gone on the hub too


def test_cookie_flags_and_passwords_never_in_clear(site):
    hub, _, db = site
    r = httpx.post(hub.url + "/api/login", json={"user": "ada", "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback; see the TLS test
    token = r.cookies["vigil_session"]
    assert (
        r.headers["x-frame-options"] == "DENY"
        and "default-src 'self'" in r.headers["content-security-policy"]
    )
    time.sleep(0.5)
    raw = b"".join(p.read_bytes() for p in db.parent.glob("hub.sqlite*"))
    assert PASSWORD.encode() not in raw and token.encode() not in raw
    assert b"$argon2id$" in raw
    assert PASSWORD not in hub.output()
    users = run_hub(["user", "list", "--db", str(db)]).stdout
    assert "ada\tadmin" in users and PASSWORD not in users


def test_oversized_and_malformed_requests(site):
    hub, _, _ = site
    c, csrf = login(hub.url, "anna")
    r = c.post("/api/alerts/1/ack", content=b"x" * 100_000,
               headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413 and "bytes" in r.json()["error"]
    r = c.post("/api/alerts/1/ack", content=b"{not json", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert c.get("/api/events?since=yesterday").status_code == 400
    assert c.get("/api/alerts?state=maybe").status_code == 400
    assert c.get("/api/alerts/999999").status_code == 404
    assert c.get("/api/units").status_code == 200  # still serving


def test_invalid_messages_are_counted_and_the_hub_keeps_going(site):
    hub, pub, _ = site
    c, _ = login(hub.url, "anna")
    before = c.get("/api/health").json()
    pub.send_raw("vigil/demo-store/u2/events", b"\xff\x00 not cbor")
    pub.send_raw("vigil/demo-store/u2/events", cbor2.dumps({"v": 1, "hello": "world"}))
    pub.send_raw("vigil/demo-store/u2/events", event(0, unit="someone-else"))  # topic mismatch
    pub.send_raw("vigil/demo-store/u2/status", cbor2.dumps({"v": 1, "state": "on fire"}))
    dup = event(1, unit="u2")
    for payload in (event(0, unit="u2"), dup, dup, event(4, unit="u2")):
        pub.send_raw("vigil/demo-store/u2/events", payload)
    h = wait(lambda: (lambda h: h if h["invalid_total"] >= before["invalid_total"] + 4 else None)(
        c.get("/api/health").json()), 20, what="invalid counted")  # fmt: skip
    wait(lambda: c.get("/api/health").json()["duplicates"] > before["duplicates"], 10)
    problems = " ".join(" ".join(x["problems"]) for x in h["invalid"])
    assert "not CBOR" in problems and "does not match the topic" in problems
    stored = c.get("/api/events?unit=u2").json()
    assert sorted(e["seq"] for e in stored) == [0, 1, 4]  # the duplicate once
    gaps = [g for g in c.get("/api/health").json()["gaps"] if g["unit"] == "u2"]
    assert gaps and gaps[0]["missing"] == 2 and gaps[0]["after_seq"] == 1


def test_login_brute_force_is_slowed(tmp_path, broker):
    db = tmp_path / "hub.sqlite"
    add_user(db, "gus", "guard", tmp_path)
    with HubProcess(broker.url, db) as hub:
        c = httpx.Client(base_url=hub.url, timeout=30)
        codes = [
            c.post("/api/login", json={"user": "gus", "password": f"guess-{i:06d}"}).status_code
            for i in range(8)
        ]
        assert codes[:5] == [401] * 5 and 429 in codes[5:]
        r = c.post("/api/login", json={"user": "gus", "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # even the right one
        assert "try again" in r.json()["error"]
        time.sleep(r.json()["retry_after_s"] + 0.5)
        assert c.post("/api/login", json={"user": "gus", "password": PASSWORD}).status_code == 200


def test_tls_console_sets_secure_cookies(tmp_path, broker):
    ca = TestCA(tmp_path / "ca")
    server = ca.server()
    db = tmp_path / "hub.sqlite"
    add_user(db, "gus", "guard", tmp_path)
    with HubProcess(broker.url, db, "--tls-cert", str(server.cert), "--tls-key", str(server.key)) as hub:  # fmt: skip
        assert hub.url.startswith("https://")
        r = httpx.post(hub.url + "/api/login", json={"user": "gus", "password": PASSWORD},
                       verify=ssl.create_default_context(cafile=str(ca.ca_file)))  # fmt: skip
        assert r.status_code == 200
        assert "secure" in r.headers["set-cookie"].lower()
        assert "max-age" in r.headers["strict-transport-security"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(hub.url.replace("https", "http") + "/api/me", timeout=5)


def test_no_default_account_and_user_commands_refuse_bad_input(tmp_path):
    db = tmp_path / "hub.sqlite"
    short = tmp_path / "short.pw"
    short.write_text("abc\n")
    r = run_hub(
        ["user", "add", "x", "--role", "guard", "--password-file", str(short), "--db", str(db)]
    )
    assert r.returncode == 2 and "at least 10 characters" in r.stderr
    r = run_hub(["user", "add", "x", "--role", "guard", "--password-file", str(tmp_path / "none"),
                 "--db", str(db)])  # fmt: skip
    assert r.returncode == 2 and "cannot read --password-file" in r.stderr
    assert run_hub(["user", "list", "--db", str(db)]).stdout == ""  # no default account
    add_user(db, "ada", "admin", tmp_path)
    r = run_hub(["user", "remove", "ada", "--db", str(db)])
    assert r.returncode == 2 and "last admin" in r.stderr
    r = run_hub(["user", "add", "ada", "--role", "guard", "--password-file", str(tmp_path / "ada.pw"),
                 "--db", str(db)])  # fmt: skip
    assert r.returncode == 2 and "exists" in r.stderr
    new = tmp_path / "new.pw"
    new.write_text("another long secret\n")
    assert (
        run_hub(["user", "passwd", "ada", "--password-file", str(new), "--db", str(db)]).returncode
        == 0
    )
    add_user(db, "gus", "guard", tmp_path)
    assert run_hub(["user", "remove", "gus", "--db", str(db)]).returncode == 0
    assert run_hub(["user", "list", "--db", str(db)]).stdout == "ada\tadmin\n"
