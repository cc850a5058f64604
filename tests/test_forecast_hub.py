"""Hub side of the forecaster: nightly refresher on a real SQLite db, stored runs, console data."""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
import time

import numpy as np
import pytest

from tests.test_forecast import synthetic
from tools.hub.forecast import from_records, hour_to_iso, to_hour
from tools.hub.forecast.console import heat_grid, next_two_weeks, weekly_summary_csv
from tools.hub.forecast.refresher import ForecastRefresher, RefresherConfig
from tools.hub.forecast.store import SqliteForecastStore


class SqliteIncidents:
    """An incident table in a real SQLite file, read as the refresher's IncidentReader."""

    def __init__(self, path):
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS incident (time TEXT, zone TEXT)")
        self.reads = 0
        self.fail = False

    def add(self, history):
        rows = zip(
            hour_to_iso(history.hours), np.array(history.zones)[history.zone_idx], strict=True
        )
        with sqlite3.connect(self.path) as db:
            db.executemany("INSERT INTO incident VALUES (?, ?)", [(t, str(z)) for t, z in rows])

    def incident_times(self, since, until):
        self.reads += 1
        if self.fail:
            raise sqlite3.OperationalError("database is locked")
        with sqlite3.connect(self.path) as db:
            return db.execute(
                "SELECT time, zone FROM incident WHERE time >= ? AND time < ? ORDER BY time",
                (since.isoformat(timespec="minutes"), until.isoformat(timespec="minutes")),
            ).fetchall()


@pytest.fixture
def hub(tmp_path):
    db = tmp_path / "hub.db"
    incidents = SqliteIncidents(db)
    incidents.add(synthetic("2019-01-07", "2021-03-01", {"entrance": 1.0, "till": 0.4}))
    store = SqliteForecastStore(db)
    return incidents, store


def test_refresh_stores_two_weeks_per_zone_from_the_db(hub):
    incidents, store = hub
    now = dt.datetime(2021, 2, 15, 3, 20)
    r = ForecastRefresher(incidents, store, RefresherConfig(zones=["stockroom"]))
    stored = r.refresh(now)
    assert stored.zones == ("entrance", "stockroom", "till")
    assert stored.start == "2021-02-15T03:00" and stored.end == "2021-03-01T03:00"
    assert stored.expected.shape == (3, 14 * 24)
    # Only incidents before the refresh hour were read: the db holds later ones.
    total = stored.expected.sum(1)
    assert total[0] > 2 * total[2] > 0 and total[1] < 0.2 * total[2]
    assert set(stored.explanation["zones"]) == {"entrance", "stockroom", "till"}
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        n = db.execute("SELECT COUNT(*) FROM forecast_hour").fetchone()[0]
    assert n == 3 * 14 * 24


def test_nightly_schedule_and_failure_keeps_the_last_forecast(hub):
    incidents, store = hub
    r = ForecastRefresher(incidents, store, RefresherConfig(refresh_hour=3, horizon_days=2))
    assert r.run_pending(dt.datetime(2021, 2, 10, 14, 0))  # first start: refresh at once
    first = store.latest()
    assert not r.run_pending(dt.datetime(2021, 2, 10, 23, 0))
    assert not r.run_pending(dt.datetime(2021, 2, 11, 2, 59))  # before tonight's hour
    incidents.fail = True
    assert r.run_pending(dt.datetime(2021, 2, 11, 3, 0))
    assert "database is locked" in r.last_error
    assert store.latest().run_id == first.run_id  # the stored forecast is untouched
    incidents.fail = False
    assert r.run_pending(dt.datetime(2021, 2, 12, 3, 5))
    assert r.last_error is None and store.latest().start == "2021-02-12T03:00"


def test_background_thread_refreshes_and_stops(hub):
    incidents, store = hub
    r = ForecastRefresher(
        incidents, store, RefresherConfig(horizon_days=1), clock=lambda: dt.datetime(2021, 2, 1)
    )
    r.start(poll_s=0.05)
    try:
        for _ in range(600):
            if store.latest() is not None:
                break
            time.sleep(0.05)
    finally:
        r.stop()
    assert store.latest() is not None and store.latest().start == "2021-02-01T00:00"
    assert incidents.reads == 1  # the same night: no second refit


def test_store_keeps_the_newest_runs(tmp_path, hub):
    incidents, _ = hub
    store = SqliteForecastStore(tmp_path / "f.db", keep_runs=2)
    r = ForecastRefresher(incidents, store, RefresherConfig(horizon_days=1))
    ids = [r.refresh(dt.datetime(2021, 2, d, 3)).run_id for d in (1, 2, 3)]
    with sqlite3.connect(store.path) as db:
        runs = [x[0] for x in db.execute("SELECT id FROM forecast_run ORDER BY id")]
        hour_runs = {x[0] for x in db.execute("SELECT DISTINCT run_id FROM forecast_hour")}
    assert runs == ids[1:] and hour_runs == set(ids[1:])


def test_no_incidents_stores_nothing(tmp_path):
    store = SqliteForecastStore(tmp_path / "f.db")
    r = ForecastRefresher(SqliteIncidents(tmp_path / "f.db"), store)
    assert r.refresh(dt.datetime(2021, 2, 1)) is None and store.latest() is None


def test_console_data(hub):
    incidents, store = hub
    now = dt.datetime(2021, 2, 17, 3)  # a Wednesday
    stored = ForecastRefresher(incidents, store).refresh(now)
    rows = incidents.incident_times(dt.datetime(2019, 1, 1), now)
    history = from_records([t for t, _ in rows], [z for _, z in rows])
    grid = heat_grid(stored, history)
    assert grid["days"][0] == "Mon" and len(grid["hours"]) == 24
    ent = grid["zones"]["entrance"]
    exp, obs = np.array(ent["expected"]), np.array(ent["observed"])
    assert exp.shape == obs.shape == (7, 24)
    assert exp[5].sum() > 1.3 * exp[2].sum()  # Saturdays are busier, in both
    assert obs[5].sum() > 1.3 * obs[2].sum()
    assert np.argmax(exp.sum(0)) in range(12, 20)
    two = next_two_weeks(stored)
    assert len(two) == 14 * 24 * 2
    assert two[0] == {
        "time": "2021-02-17T03:00",
        "zone": "entrance",
        "expected": round(float(stored.expected[0, 0]), 4),
        "low": 0,
        "high": int(stored.high[0, 0]),
    }
    text = weekly_summary_csv(stored, history)
    table = list(csv.DictReader(io.StringIO(text)))
    assert [t["zone"] for t in table] == ["entrance", "till"]
    ent = table[0]
    week_truth = float(stored.expected[0, :168].sum())
    assert abs(float(ent["next_week_expected"]) - week_truth) < 0.01
    assert int(ent["next_week_low"]) <= week_truth <= int(ent["next_week_high"])
    last = (history.hours >= to_hour("2021-02-10T03")) & (history.hours < to_hour(now.isoformat()))
    assert int(ent["last_week"]) == int((last & (history.zone_idx == 0)).sum())
    assert len(ent["peak_hours"].split()) == 3
