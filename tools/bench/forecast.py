"""Forecaster cost on the hub: a nightly refit of 20 zones x 3 years of hourly history.

    python -m tools.bench.forecast [--zones 20] [--years 3] [--rate 0.05] [--passes 3]

Synthetic incidents (Poisson, hour-of-week profile, zones of different sizes) stand in for
the hub's database. Times fit + a 14-day forecast (the refresher's work, without the db), and
for scale the same for 1 zone, and the whole nightly refresh through a SQLite incident table
and the SQLite forecast store (read, parse, fit, forecast, write): the issue's target is under
10 s for 20 zones x 3 years. Each figure is the fastest of ``--passes`` (other load on the
machine only adds time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.hub.forecast import Forecaster, History, hour_to_iso, to_hour
from tools.hub.forecast.model import calendar
from tools.hub.forecast.refresher import ForecastRefresher
from tools.hub.forecast.store import SqliteForecastStore

TARGET_S = 10.0


def history(zones: int, years: int, rate: float, seed: int = 0) -> tuple[History, int]:
    """Incidents for ``zones`` zones over ``years`` years ending at 2026-01-05 (a Monday)."""
    rng = np.random.default_rng(seed)
    t0 = to_hour("2026-01-05")
    hours = np.arange(t0 - years * 52 * 168, t0)
    cal = calendar(hours)
    shape = 0.2 + np.sin(np.pi * np.clip(cal["hod"] - 8, 0, 13) / 13) * (
        1 + 0.3 * (cal["dow"] >= 5)
    )
    scales = rate * rng.lognormal(0, 0.8, zones)
    hs, zs = [], []
    for z, s in enumerate(scales):
        n = rng.poisson(shape * s)
        hs.append(np.repeat(hours, n))
        zs.append(np.full(n.sum(), z, dtype=np.int32))
    h, zi = np.concatenate(hs), np.concatenate(zs)
    order = np.argsort(h, kind="stable")
    return History(h[order], zi[order], tuple(f"zone-{i:02d}" for i in range(zones))), t0


class SqliteIncidents:
    """The hub-db side: an incident table (time, zone) in a SQLite file."""

    def __init__(self, path: Path, h: History) -> None:
        self.path = path
        rows = zip(hour_to_iso(h.hours), np.array(h.zones)[h.zone_idx], strict=True)
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE incident (time TEXT, zone TEXT)")
            db.execute("CREATE INDEX incident_time ON incident (time)")
            db.executemany("INSERT INTO incident VALUES (?, ?)", [(t, str(z)) for t, z in rows])

    def incident_times(self, since: dt.datetime, until: dt.datetime) -> list:
        with sqlite3.connect(self.path) as db:
            return db.execute(
                "SELECT time, zone FROM incident WHERE time >= ? AND time < ?",
                (since.isoformat(timespec="minutes"), until.isoformat(timespec="minutes")),
            ).fetchall()


def best_of(passes: int, fn) -> float:
    times = []
    for _ in range(passes):
        a = time.perf_counter()
        fn()
        times.append(time.perf_counter() - a)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench.forecast", description=__doc__)
    p.add_argument("--zones", type=int, default=20)
    p.add_argument("--years", type=int, default=3)
    p.add_argument("--rate", type=float, default=0.05, help="mean incidents per zone-hour")
    p.add_argument("--passes", type=int, default=3)
    args = p.parse_args(argv)
    big, t0 = history(args.zones, args.years, args.rate)
    one = History(big.hours, np.zeros_like(big.zone_idx), ("all",))

    def run(h: History) -> None:
        Forecaster().fit(h, t0).predict(t0 + 14 * 24)

    run(one)  # imports and first-call set-up are not the nightly cost
    t_big = best_of(args.passes, lambda: run(big))
    t_one = best_of(args.passes, lambda: run(one))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hub.db"
        refresher = ForecastRefresher(SqliteIncidents(db, big), SqliteForecastStore(db))
        now = dt.datetime(2026, 1, 5, 3)
        t_night = best_of(args.passes, lambda: refresher.refresh(now))
    print(f"history: {args.zones} zones x {args.years} years, {len(big.hours)} incidents")
    print(f"fit + 14-day forecast, {args.zones} zones: {t_big:.2f} s (target < {TARGET_S:.0f} s)")
    print(f"fit + 14-day forecast, 1 zone:  {t_one:.2f} s  ({t_big / t_one:.1f}x for {args.zones})")
    print(f"nightly refresh via SQLite (read, fit, 14 days, store): {t_night:.2f} s")
    ok = max(t_big, t_night) < TARGET_S
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
