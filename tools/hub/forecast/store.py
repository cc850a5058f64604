"""Stored forecasts: the latest nightly runs in a SQLite file (WAL), read by the console.

Two tables: ``forecast_run`` (one row per refresh: when, the window, the explanation as JSON)
and ``forecast_hour`` (time, zone, expected, low, high per run). Only the newest
``keep_runs`` runs are kept. A failed refresh writes nothing, so the last good forecast stays.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tools.hub.forecast.history import hour_to_iso
from tools.hub.forecast.model import Explanation, Forecast

SCHEMA = """
CREATE TABLE IF NOT EXISTS forecast_run (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    made_at TEXT NOT NULL,
    start TEXT NOT NULL,
    end TEXT NOT NULL,
    zones TEXT NOT NULL,
    explanation TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forecast_hour (
    run_id INTEGER NOT NULL REFERENCES forecast_run(id) ON DELETE CASCADE,
    time TEXT NOT NULL,
    zone TEXT NOT NULL,
    expected REAL NOT NULL,
    low INTEGER NOT NULL,
    high INTEGER NOT NULL,
    PRIMARY KEY (run_id, zone, time)
);
"""


@dataclass(frozen=True)
class StoredForecast:
    """One stored run: the window, hourly rows per zone and the explanation (plain data)."""

    run_id: int
    made_at: str
    start: str
    end: str
    zones: tuple[str, ...]
    times: tuple[str, ...]
    expected: np.ndarray  # (zones, hours)
    low: np.ndarray
    high: np.ndarray
    explanation: dict[str, Any]


class ForecastStore(Protocol):
    """Where the refresher puts a run and the console finds the latest."""

    def save(self, made_at: str, forecast: Forecast, explanation: Explanation) -> int: ...

    def latest(self) -> StoredForecast | None: ...


def explanation_dict(e: Explanation, zones: tuple[str, ...]) -> dict[str, Any]:
    """JSON-ready explanation, per zone."""
    return {
        "zones": {
            z: {
                "profile": np.round(e.profile[i], 4).tolist(),
                "weekly_level": round(float(e.weekly_level[i]), 4),
                "level_ratio": round(float(e.level_ratio[i]), 4),
                "dispersion": round(float(e.dispersion[i]), 5),
            }
            for i, z in enumerate(zones)
        },
        "trend_per_year": round(e.trend_per_year, 4),
        "holidays": {k: round(v, 4) for k, v in e.holidays.items()},
        "months": np.round(e.months, 4).tolist(),
        "gap_days": e.gap_days,
    }


class SqliteForecastStore:
    """ForecastStore in a SQLite file (its own tables; may share the hub's database file)."""

    def __init__(self, path: str | Path, keep_runs: int = 7) -> None:
        self.path, self.keep_runs = Path(path), keep_runs
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per call, committed (or rolled back) and closed."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            with db:
                yield db
        finally:
            db.close()

    def save(self, made_at: str, forecast: Forecast, explanation: Explanation) -> int:
        times = hour_to_iso(forecast.hours)
        rows = [
            (z, times[j], float(forecast.expected[i, j]), int(forecast.low[i, j]))
            + (int(forecast.high[i, j]),)
            for i, z in enumerate(forecast.zones)
            for j in range(len(times))
        ]
        end = hour_to_iso(np.array([forecast.hours[-1] + 1]))[0]
        expl = json.dumps(explanation_dict(explanation, forecast.zones))
        with self._lock, self._connect() as db:  # one transaction: all of a run or none
            cur = db.execute(
                "INSERT INTO forecast_run (made_at, start, end, zones, explanation) "
                "VALUES (?, ?, ?, ?, ?)",
                (made_at, times[0], end, json.dumps(list(forecast.zones)), expl),
            )
            run_id = int(cur.lastrowid)
            db.executemany(
                "INSERT INTO forecast_hour (run_id, zone, time, expected, low, high) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, *r) for r in rows],
            )
            db.execute(
                "DELETE FROM forecast_run WHERE id NOT IN "
                "(SELECT id FROM forecast_run ORDER BY id DESC LIMIT ?)",
                (self.keep_runs,),
            )
        return run_id

    def latest(self) -> StoredForecast | None:
        with self._connect() as db:
            run = db.execute(
                "SELECT id, made_at, start, end, zones, explanation FROM forecast_run "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if run is None:
                return None
            rows = db.execute(
                "SELECT zone, time, expected, low, high FROM forecast_hour WHERE run_id = ? "
                "ORDER BY zone, time",
                (run[0],),
            ).fetchall()
        zones = tuple(json.loads(run[4]))
        times = tuple(sorted({r[1] for r in rows}))
        zi = {z: i for i, z in enumerate(zones)}
        ti = {t: j for j, t in enumerate(times)}
        arrays = [np.zeros((len(zones), len(times))) for _ in range(3)]
        for zone, t, *values in rows:
            for a, v in zip(arrays, values, strict=True):
                a[zi[zone], ti[t]] = v
        return StoredForecast(
            run[0], run[1], run[2], run[3], zones, times, *arrays, json.loads(run[5])
        )
