"""Insights endpoints of the hub (peak times, floor heat, weekly summary and its CSV) on a
real hub database: alerts, footfall events and a unit's zone sketch written to SQLite, the
service's own nightly refresher fitting on them, the API through Starlette's test client."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("statsmodels")

from starlette.testclient import TestClient  # noqa: E402

from tests.test_forecast import rates  # noqa: E402
from tools.hub.forecast import to_hour  # noqa: E402
from tools.hub.serve import auth, config  # noqa: E402
from tools.hub.serve.api import build_app  # noqa: E402
from tools.hub.serve.service import Hub  # noqa: E402

PASSWORD = "correct horse battery"
UNIT_CONFIG = """
[[zones]]
name = "entrance"
polygon = [[0.05, 0.1], [0.45, 0.1], [0.45, 0.9], [0.05, 0.9]]
[[zones]]
name = "till"
polygon = [[0.55, 0.1], [0.95, 0.1], [0.95, 0.9], [0.55, 0.9]]
"""
FOOTFALL = [(2, "entrance", 10, 12.0), (5, "entrance", 4, 30.0), (3, "till", 6, 50.0)]  # h ago


def _add_alerts(hub: Hub, now: dt.datetime, rng: np.random.Generator) -> list[tuple]:
    """Two years of alerts at a known hour-of-week rate (entrance 1x, till 0.4x)."""
    t0 = to_hour(now.replace(minute=0, second=0, microsecond=0).isoformat())
    hours = np.arange(t0 - 104 * 168, t0)
    rows = []
    for zone, scale in (("entrance", 1.0), ("till", 0.4)):
        for h in np.repeat(hours, rng.poisson(rates(hours, scale))):
            local = dt.datetime(1970, 1, 1) + dt.timedelta(hours=int(h), minutes=20)
            rows.append((local.timestamp(), zone))
    with hub.db.write() as con:
        con.executemany(
            "INSERT INTO alerts (site, unit, event_id, type, rule, zone, severity, state, "
            "opened_at) VALUES ('s', 'cam-1', ?, 'concealment', 'r', ?, 3, 'open', ?)",
            [(uuid.uuid4().hex, z, t) for t, z in rows],
        )
    return rows


@pytest.fixture
def insights(tmp_path):
    store = tmp_path / "store.toml"
    store.write_text(
        '[forecast]\nhorizon_days = 14\n\n[[units]]\nunit = "cam-1"\nname = "Front door"\n'
    )
    cfg = config.build(db=tmp_path / "hub.sqlite", store=str(store), site="+")
    hub = Hub(cfg, validate=False)
    now = dt.datetime.now()
    alerts = _add_alerts(hub, now, np.random.default_rng(3))
    with hub.db.write() as con:
        con.execute(
            "INSERT INTO units (site, unit, state, config) VALUES ('s', 'cam-1', 'online', ?)",
            (UNIT_CONFIG,),
        )
        for ago, zone, visits, dwell in FOOTFALL:
            body = {"type": "footfall", "explain": {"zones": {zone: {
                "visits_ended": visits, "mean_dwell_s": dwell, "max_people": 2}}}}  # fmt: skip
            con.execute(
                "INSERT INTO events (msg_id, site, unit, type, received_at, body) "
                "VALUES (?, 's', 'cam-1', 'footfall', ?, ?)",
                (uuid.uuid4().hex, time.time() - ago * 3600, json.dumps(body)),
            )
    auth.add_user(hub.db, "anna", "manager", PASSWORD)
    auth.add_user(hub.db, "gus", "guard", PASSWORD)
    stored = hub.forecast.refresh(now)
    client = TestClient(build_app(hub))
    try:
        yield hub, client, stored, alerts, now
    finally:
        client.close()
        hub.stop()


def _login(client: TestClient, user: str) -> None:
    r = client.post("/api/login", json={"user": user, "password": PASSWORD})
    assert r.status_code == 200, r.text


def test_endpoints_need_a_session_and_the_summary_a_manager(insights):
    _, client, *_ = insights
    for path in ("peak-times", "floor-heat", "weekly-summary", "weekly-summary.csv"):
        assert client.get(f"/api/insights/{path}").status_code == 401
    _login(client, "gus")
    assert client.get("/api/insights/peak-times").status_code == 200
    assert client.get("/api/insights/floor-heat").status_code == 200
    r = client.get("/api/insights/weekly-summary.csv")
    assert r.status_code == 403 and "manager" in r.json()["error"]
    assert client.get("/api/insights/weekly-summary").status_code == 403


def test_peak_times_grid_and_two_weeks_with_intervals(insights):
    _, client, stored, alerts, now = insights
    _login(client, "gus")
    p = client.get("/api/insights/peak-times").json()
    assert p["zones"] == ["entrance", "till"] and p["start"] == stored.start
    ent = p["grid"]["zones"]["entrance"]
    exp, obs = np.array(ent["expected"]), np.array(ent["observed"])
    assert exp.shape == obs.shape == (7, 24)
    assert exp[5].sum() > 1.3 * exp[2].sum()  # Saturdays 1.5x, as generated
    assert 12 <= int(np.argmax(exp.sum(0))) <= 19  # busy afternoons
    # The observed grid is the mean per hour of week of the alerts in the db, last 52 weeks.
    t0 = to_hour(stored.start)
    seen = np.zeros(168)
    for t, z in alerts:
        h = to_hour(dt.datetime.fromtimestamp(t).replace(minute=0).isoformat())
        if z == "entrance" and t0 - 52 * 168 <= h < t0:
            seen[((h // 24 + 3) % 7) * 24 + h % 24] += 1
    assert np.allclose(obs.ravel(), np.round(seen / 52, 4))
    rows = [r for r in p["hours"] if r["zone"] == "till"]
    assert len(rows) == 14 * 24 and rows[0]["time"] == stored.start
    assert all(r["low"] <= r["expected"] <= r["high"] + 1 for r in rows)
    one = client.get("/api/insights/peak-times?zone=till").json()
    assert one["zones"] == ["till"] and list(one["grid"]["zones"]) == ["till"]
    assert one["hours"] == rows
    r = client.get("/api/insights/peak-times?zone=stockroom")
    assert r.status_code == 404 and "not forecast" in r.json()["error"]


def test_floor_heat_dwell_and_incidents_per_sketched_zone(insights):
    hub, client, _, alerts, _ = insights
    _login(client, "gus")
    f = client.get("/api/insights/floor-heat?days=1").json()
    (unit,) = f["units"]
    assert unit["unit"] == "cam-1" and unit["name"] == "Front door"
    zones = {z["name"]: z for z in unit["zones"]}
    assert zones["entrance"]["visits"] == 14 and zones["till"]["visits"] == 6
    assert zones["entrance"]["dwell_s"] == pytest.approx(10 * 12.0 + 4 * 30.0)
    assert zones["till"]["dwell_s"] == pytest.approx(300.0)
    assert zones["till"]["dwell_heat"] == 1.0
    assert zones["entrance"]["dwell_heat"] == pytest.approx(240 / 300, abs=1e-4)
    since = f["since"]
    for name in ("entrance", "till"):
        n = sum(1 for t, z in alerts if z == name and t >= since)
        assert zones[name]["incidents"] == n
    assert max(z["incident_heat"] for z in zones.values()) == 1.0
    assert len(zones["entrance"]["polygon"]) == 4
    assert client.get("/api/insights/floor-heat?days=0").status_code == 400


def test_weekly_summary_json_and_csv_export(insights):
    _, client, stored, alerts, _ = insights
    _login(client, "anna")
    j = client.get("/api/insights/weekly-summary").json()
    r = client.get("/api/insights/weekly-summary.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f'filename="vigil-weekly-{stored.start[:10]}.csv"' in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [t["zone"] for t in table] == [row["zone"] for row in j["rows"]] == ["entrance", "till"]
    assert {k: str(v) for k, v in j["rows"][0].items()} == table[0]
    t0 = dt.datetime.fromisoformat(stored.start).timestamp()
    last = sum(1 for t, z in alerts if z == "entrance" and t0 - 7 * 86400 <= t < t0)
    assert int(table[0]["last_week"]) == last
    week = float(stored.expected[0, :168].sum())
    assert float(table[0]["next_week_expected"]) == pytest.approx(week, abs=0.01)
    assert int(table[0]["next_week_low"]) <= week <= int(table[0]["next_week_high"])
    assert int(table[0]["visits_last_week"]) == 14
    assert float(table[0]["mean_dwell_s_last_week"]) == pytest.approx(240 / 14, abs=0.05)
    assert len(table[0]["peak_hours"].split()) == 3


def test_the_page_and_its_assets_are_served_from_the_hub(insights):
    _, client, *_ = insights
    page = client.get("/insights")
    assert page.status_code == 200 and 'id="peak-grid"' in page.text
    for asset in ("insights.js", "insights.css"):
        assert f"/static/{asset}" in page.text
        assert client.get(f"/static/{asset}").status_code == 200
    assert "http" not in client.get("/static/insights.js").text.replace("http://www.w3.org", "")


def test_without_a_forecast_table_the_endpoints_say_so(tmp_path):
    cfg = config.build(db=tmp_path / "hub.sqlite", site="+")
    hub = Hub(cfg, validate=False)
    auth.add_user(hub.db, "anna", "manager", PASSWORD)
    try:
        with TestClient(build_app(hub)) as client:
            _login(client, "anna")
            r = client.get("/api/insights/peak-times")
            assert r.status_code == 404 and "[forecast]" in r.json()["error"]
            assert client.get("/api/insights/floor-heat").json()["units"] == []
    finally:
        hub.stop()
