"""The console's peak-times data from a stored forecast: heat grid, next two weeks, weekly CSV.

Plain, JSON-ready values (lists, dicts, str); the web console renders them.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from scipy import stats

from tools.hub.forecast.history import History, to_hour
from tools.hub.forecast.model import HOURS_PER_WEEK, calendar
from tools.hub.forecast.store import StoredForecast

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _hours(stored: StoredForecast) -> np.ndarray:
    return np.array([to_hour(t) for t in stored.times], dtype=np.int64)


def heat_grid(stored: StoredForecast, history: History | None = None, weeks: int = 52) -> dict:
    """Per zone, a 7 x 24 grid (Monday first) of expected incidents per hour over the forecast's
    first full week; with ``history``, also the mean seen per hour over its last ``weeks``."""
    hours = _hours(stored)
    how = calendar(hours)["how"]
    first = np.flatnonzero(how == 0)
    span = slice(first[0], first[0] + HOURS_PER_WEEK) if len(first) else slice(0, None)
    out: dict[str, Any] = {"days": list(DAYS), "hours": list(range(24)), "zones": {}}
    grids = np.zeros((len(stored.zones), HOURS_PER_WEEK))
    n = np.bincount(how[span], minlength=HOURS_PER_WEEK)
    for i in range(len(stored.zones)):
        grids[i] = np.bincount(how[span], weights=stored.expected[i, span], minlength=168)
    grids = grids / np.maximum(n, 1)
    seen = None
    if history is not None:
        t0 = int(hours[0])
        start = t0 - weeks * HOURS_PER_WEEK
        counts = history.counts(start, t0)
        h_how = calendar(np.arange(start, t0))["how"]
        zone_of = {z: i for i, z in enumerate(history.zones)}
        seen = {
            z: (np.bincount(h_how, weights=counts[zone_of[z]], minlength=168) / weeks)
            for z in stored.zones
            if z in zone_of
        }
    for i, z in enumerate(stored.zones):
        cell: dict[str, Any] = {"expected": np.round(grids[i].reshape(7, 24), 4).tolist()}
        if seen is not None and z in seen:
            cell["observed"] = np.round(seen[z].reshape(7, 24), 4).tolist()
        out["zones"][z] = cell
    return out


def next_two_weeks(stored: StoredForecast, days: int = 14) -> list[dict[str, Any]]:
    """Hourly rows (time, zone, expected, low, high) for the first ``days`` days stored."""
    n = min(len(stored.times), days * 24)
    return [
        {
            "time": stored.times[j],
            "zone": z,
            "expected": round(float(stored.expected[i, j]), 4),
            "low": int(stored.low[i, j]),
            "high": int(stored.high[i, j]),
        }
        for j in range(n)
        for i, z in enumerate(stored.zones)
    ]


def weekly_summary(stored: StoredForecast, history: History | None = None) -> list[dict]:
    """Per zone: incidents in the week before the forecast, the next 7 days' expected total with
    an 80 % interval, the level against the long run, and the three peak hours."""
    hours = _hours(stored)
    week = slice(0, min(len(hours), 7 * 24))
    zone_of = {z: i for i, z in enumerate(history.zones)} if history is not None else {}
    t0 = int(hours[0])
    last = history.counts(t0 - HOURS_PER_WEEK, t0) if history is not None else None
    rows = []
    for i, z in enumerate(stored.zones):
        mu = stored.expected[i, week]
        total = float(mu.sum())
        info = stored.explanation["zones"].get(z, {})
        alpha = float(info.get("dispersion", 0.0)) * float((mu**2).sum()) / max(total**2, 1e-12)
        n = 1.0 / max(alpha, 1e-9)
        lo, hi = stats.nbinom.ppf([0.1, 0.9], n, n / (n + total)) if total > 0 else (0, 0)
        peaks = np.argsort(-mu, kind="stable")[:3]
        rows.append(
            {
                "zone": z,
                "last_week": int(last[zone_of[z]].sum())
                if last is not None and z in zone_of
                else "",
                "next_week_expected": round(total, 2),
                "next_week_low": int(lo),
                "next_week_high": int(hi),
                "level_vs_long_run": info.get("level_ratio", ""),
                "peak_hours": " ".join(stored.times[week][k] for k in peaks),
            }
        )
    return rows


def weekly_summary_csv(stored: StoredForecast, history: History | None = None) -> str:
    """The weekly summary as CSV text (the manager's export)."""
    rows = weekly_summary(stored, history)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["zone"])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
