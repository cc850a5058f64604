"""`vigil-eval forecast`: expected incidents per zone per hour over [T0, T1), with an 80 % interval.

HISTORY.csv: one row per incident, an ISO 8601 local ``time`` column (and optionally a zone
column, ``--zone-column``; without one everything is one zone, ``all``). Only incidents
before T0 are used. FORECAST.csv: ``time,zone,expected,low,high`` for every hour in
[T0, T1) and every zone seen in the history, in time then zone order.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from tools.hub.forecast import (
    ForecastConfig,
    Forecaster,
    HistoryError,
    hour_to_iso,
    read_history_csv,
    to_hour,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", required=True, help="HISTORY.csv: one incident per row, 'time'")
    p.add_argument("--start", required=True, help="T0, first hour forecast (ISO 8601 local)")
    p.add_argument("--end", required=True, help="T1, end of the window, exclusive")
    p.add_argument("--out", required=True, help="FORECAST.csv to write")
    p.add_argument("--zone-column", default=None, help="zone column of HISTORY.csv")


def run(args: argparse.Namespace) -> int:
    t0 = to_hour(args.start, "--start")
    t1 = to_hour(args.end, "--end")
    if t1 <= t0:
        raise HistoryError(f"--end {args.end} is not after --start {args.start}")
    history = read_history_csv(args.history, args.zone_column)
    if history.duplicates:
        rows = ", ".join(map(str, history.duplicates[:10]))
        more = " ..." if len(history.duplicates) > 10 else ""
        print(
            f"vigil-eval forecast: {args.history}: {len(history.duplicates)} rows repeat an "
            f"earlier row exactly (rows {rows}{more}); each is counted as an incident",
            file=sys.stderr,
        )
    past = history.before(t0)
    if len(past.hours) == 0:
        raise HistoryError(
            f"--start {args.start}: the window begins before the history "
            f"(first incident {hour_to_iso(np.array([history.first_hour]))[0]})"
        )
    forecast = Forecaster(ForecastConfig()).fit(past, t0).predict(t1)
    z, h = len(forecast.zones), len(forecast.hours)
    frame = pd.DataFrame(
        {
            "time": np.repeat(hour_to_iso(forecast.hours), z),
            "zone": np.tile(np.array(forecast.zones, dtype=object), h),
            "expected": forecast.expected.T.ravel(),
            "low": forecast.low.T.ravel(),
            "high": forecast.high.T.ravel(),
        }
    )
    frame.to_csv(args.out, index=False, float_format="%.5f")
    print(
        f"vigil-eval forecast: {args.out}: {h} hours x {z} zones from {len(past.hours)} "
        f"incidents before {args.start}",
        file=sys.stderr,
    )
    return 0
