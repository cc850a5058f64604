"""Score incident forecasts: RMSE per hour and per day against three seasonal-naive baselines.

    python -m tools.eval.forecast --history H.csv [--zone-column Z] --start 2017-01-01 --end 2019-01-01
    python -m tools.eval.forecast --dataset stlouis [--zone-column district] ...
    python -m tools.eval.forecast --history H.csv --forecast FORECAST.csv   # score a vigil-eval output

Without ``--forecast`` the window is forecast month by month, each month refitted on the
history before it only (as ``vigil-eval forecast`` would be run). The baselines use the same
history: the same hour of week over the last 1, 4 and 52 weeks before each month's start
(so "same hour last week" means the last week seen, repeated). Metrics per zone-hour and
zone-day: RMSE (what is optimised: the forecast is an expected count), MAE (reported only:
on sparse series it rewards predicting zero), the share of hours inside the 80 % interval,
and the share of incidents that fall in each week's 20 highest-forecast hours per zone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tools.hub.forecast import (
    Forecast,
    ForecastConfig,
    Forecaster,
    History,
    HistoryError,
    read_history_csv,
    to_hour,
)
from tools.hub.forecast.model import HOURS_PER_WEEK, calendar

BASELINES = {"last week": 1, "mean of 4 weeks": 4, "mean of 52 weeks": 52}
TOP_HOURS = 20


def seasonal_naive(history: History, t0: int, t1: int, weeks: int) -> np.ndarray:
    """Mean of the same hour of week over the last ``weeks`` weeks before ``t0`` (zones, hours);
    weeks before the history's first day are left out."""
    first = (history.first_hour // 24) * 24
    n = max(1, min(weeks, (t0 - first) // HOURS_PER_WEEK))
    past = history.counts(t0 - n * HOURS_PER_WEEK, t0).reshape(len(history.zones), n, -1)
    profile = past.mean(1)  # (zones, 168), index = hours since t0 - 168 * k
    offset = (np.arange(t0, t1) - t0) % HOURS_PER_WEEK
    return profile[:, offset]


def top_hours_share(expected: np.ndarray, actual: np.ndarray, hours: np.ndarray) -> float:
    """Share of actual incidents in each (Monday-start) week's TOP_HOURS highest forecast hours,
    per zone; ties are broken by time."""
    week = (calendar(hours)["day"] + 3) // 7
    caught = 0.0
    for w in np.unique(week):
        cols = np.flatnonzero(week == w)
        k = min(TOP_HOURS, len(cols))
        order = np.argsort(-expected[:, cols], axis=1, kind="stable")[:, :k]
        caught += np.take_along_axis(actual[:, cols], order, axis=1).sum()
    total = actual.sum()
    return float(caught / total) if total else float("nan")


def score(
    expected: np.ndarray,
    actual: np.ndarray,
    hours: np.ndarray,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of one method over (zones, hours) arrays."""
    day = calendar(hours)["day"]
    _, d = np.unique(day, return_inverse=True)
    daily_e = np.stack([np.bincount(d, weights=row) for row in expected])
    daily_a = np.stack([np.bincount(d, weights=row) for row in actual])
    out = {
        "rmse_hour": float(np.sqrt(np.mean((expected - actual) ** 2))),
        "rmse_day": float(np.sqrt(np.mean((daily_e - daily_a) ** 2))),
        "mae_hour": float(np.mean(np.abs(expected - actual))),
        "mae_day": float(np.mean(np.abs(daily_e - daily_a))),
        "top20_share": top_hours_share(expected, actual, hours),
    }
    if low is not None and high is not None:
        out["coverage80"] = float(np.mean((actual >= low) & (actual <= high)))
    return out


def month_starts(t0: int, t1: int) -> list[int]:
    """Hour indices of t0, each first of a month after it, and t1."""
    months = np.arange(
        np.datetime64(int(t0), "h").astype("datetime64[M]") + 1,
        np.datetime64(int(t1), "h").astype("datetime64[M]") + 1,
    )
    inner = [int(m.astype("datetime64[h]").astype(np.int64)) for m in months]
    return [t0] + [h for h in inner if t0 < h < t1] + [t1]


def evaluate(
    history: History, t0: int, t1: int, config: ForecastConfig | None = None
) -> dict[str, dict[str, float]]:
    """Month-by-month refits over [t0, t1): the model's and the baselines' metrics."""
    edges = month_starts(t0, t1)
    parts: dict[str, list[np.ndarray]] = {"model": [], "low": [], "high": []}
    for name in BASELINES:
        parts[name] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        past = history.before(a)
        f: Forecast = Forecaster(config).fit(past, a).predict(b)
        parts["model"].append(f.expected)
        parts["low"].append(f.low)
        parts["high"].append(f.high)
        for name, weeks in BASELINES.items():
            parts[name].append(seasonal_naive(past, a, b, weeks))
    hours = np.arange(t0, t1, dtype=np.int64)
    actual = history.counts(t0, t1)
    cat = {k: np.concatenate(v, axis=1) for k, v in parts.items()}
    results = {"model": score(cat["model"], actual, hours, cat["low"], cat["high"])}
    for name in BASELINES:
        results[name] = score(cat[name], actual, hours)
    results["_window"] = {
        "zones": len(history.zones),
        "hours": len(hours),
        "incidents": int(actual.sum()),
        "refits": len(edges) - 1,
    }
    return results


def score_file(history: History, path: Path) -> dict[str, dict[str, float]]:
    """Score a FORECAST.csv (time,zone,expected,low,high) against the history and baselines."""
    f = pd.read_csv(path, dtype={"zone": str})
    missing = {"time", "zone", "expected", "low", "high"} - set(f.columns)
    if missing:
        raise HistoryError(f"{path}: missing columns {sorted(missing)}")
    hours = pd.to_datetime(f["time"], format="ISO8601").to_numpy().astype("datetime64[h]")
    f["h"] = hours.astype(np.int64)
    t0, t1 = int(f["h"].min()), int(f["h"].max()) + 1
    zone_of = {z: i for i, z in enumerate(history.zones)}
    unknown = set(f["zone"]) - set(zone_of)
    if unknown:
        raise HistoryError(f"{path}: zones not in the history: {sorted(unknown)[:5]}")
    shape = (len(history.zones), t1 - t0)
    arrays = {k: np.zeros(shape) for k in ("expected", "low", "high")}
    zi, hi = f["zone"].map(zone_of).to_numpy(), f["h"].to_numpy() - t0
    for k in arrays:
        arrays[k][zi, hi] = f[k].to_numpy()
    hrs = np.arange(t0, t1, dtype=np.int64)
    actual = history.counts(t0, t1)
    past = history.before(t0)
    out = {"model": score(arrays["expected"], actual, hrs, arrays["low"], arrays["high"])}
    for name, weeks in BASELINES.items():
        out[name] = score(seasonal_naive(past, t0, t1, weeks), actual, hrs)
    return out


def table(results: dict[str, dict[str, float]]) -> str:
    """A markdown table, one row per method."""
    cols = ["rmse_hour", "rmse_day", "mae_hour", "mae_day", "coverage80", "top20_share"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, m in results.items():
        if name.startswith("_"):
            continue
        cells = [f"{m[c]:.4f}" if c in m else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.eval.forecast", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--history", type=Path, help="HISTORY.csv (time[,zone])")
    src.add_argument("--dataset", choices=["stlouis"], help="build the history from shared data")
    p.add_argument("--zone-column", default=None, help="zone column (default: one zone)")
    p.add_argument("--start", default="2017-01-01", help="first hour forecast (ISO 8601)")
    p.add_argument("--end", default="2019-01-01", help="end of the window, exclusive")
    p.add_argument("--forecast", type=Path, help="score this FORECAST.csv instead of refitting")
    p.add_argument("--config", help="forecaster settings as JSON (ForecastConfig fields)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    try:
        if args.dataset:
            from tools.eval.theft import stlouis_history

            history = stlouis_history(args.zone_column)
        else:
            history = read_history_csv(args.history, args.zone_column)
        if args.forecast:
            results = score_file(history, args.forecast)
        else:
            config = ForecastConfig.model_validate_json(args.config) if args.config else None
            t0, t1 = to_hour(args.start, "--start"), to_hour(args.end, "--end")
            results = evaluate(history, t0, t1, config)
    except (HistoryError, OSError, ValueError) as e:
        print(f"forecast eval: error: {e}", file=sys.stderr)
        return 2
    print(table(results))
    if "_window" in results:
        print(results["_window"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
