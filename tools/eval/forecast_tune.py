"""Tune the forecaster on development windows: one setting at a time around the defaults.

    python -m tools.eval.forecast_tune [--windows 2013-01-01:2015-01-01 2015-01-01:2017-01-01]
                                       [--zone-column district] [--only NAME ...]

Each variant is scored month by month (refit each month on the history before it) on each
window; the table gives hourly and daily RMSE, coverage and the top-20 share, beside the
52-week baseline. The defaults in ForecastConfig were chosen from this run on St. Louis
2013-2014 and 2015-2016 (city-wide; per district as a check); 2017-2018 is then the untuned
check (docs/forecast.md).
"""

from __future__ import annotations

import argparse
import sys

from tools.eval.forecast import evaluate
from tools.eval.theft import stlouis_history
from tools.hub.forecast import ForecastConfig, to_hour

VARIANTS: dict[str, dict] = {
    "defaults": {},
    "months (11 factors)": {"annual_harmonics": 0},
    "1 annual harmonic": {"annual_harmonics": 1},
    "3 annual harmonics": {"annual_harmonics": 3},
    "level 30 % steady (52 w)": {"anchor_weight": 0.3},
    "level 60 % steady (52 w)": {"anchor_weight": 0.6},
    "holiday eves, days after, observed": {"holiday_neighbours": True},
    "level half-life 8 w": {"level_half_life_weeks": 8},
    "level half-life 6 w": {"level_half_life_weeks": 6},
    "level half-life 26 w": {"level_half_life_weeks": 26},
    "level prior 5": {"level_prior": 5},
    "level prior 60": {"level_prior": 60},
    "profile half-life 52 w": {"profile_half_life_weeks": 52},
    "profile half-life 208 w": {"profile_half_life_weeks": 208},
    "zone prior 3": {"zone_prior": 3},
    "zone prior 30": {"zone_prior": 30},
    "no annual": {"annual": False},
    "no holidays": {"holidays": None},
    "trend": {"trend": True},
    "window 156 w": {"window_weeks": 156},
    "level prior 5, zone prior 30": {"level_prior": 5, "zone_prior": 30},
    "level prior 2, zone prior 30": {"level_prior": 2, "zone_prior": 30},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.eval.forecast_tune", description=__doc__)
    p.add_argument(
        "--windows", nargs="+", default=["2013-01-01:2015-01-01", "2015-01-01:2017-01-01"]
    )
    p.add_argument("--zone-column", default=None)
    p.add_argument("--only", nargs="*", help="variant names to run (default all)")
    args = p.parse_args(argv)
    history = stlouis_history(args.zone_column)
    windows = [w.split(":") for w in args.windows]
    print("| variant | window | rmse_hour (52 w) | rmse_day (52 w) | coverage80 | top20_share |")
    print("|---|---|---:|---:|---:|---:|")
    for name, change in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        for a, b in windows:
            r = evaluate(history, to_hour(a, "--windows"), to_hour(b, "--windows"),
                         ForecastConfig(**change))  # fmt: skip
            m, base = r["model"], r["mean of 52 weeks"]
            print(
                f"| {name} | {a[:7]}..{b[:7]} | {m['rmse_hour']:.5f} ({base['rmse_hour']:.5f}) "
                f"| {m['rmse_day']:.4f} ({base['rmse_day']:.4f}) | {m['coverage80']:.3f} "
                f"| {m['top20_share']:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
