"""Tune the forecaster on a development window: one setting at a time around the defaults.

    python -m tools.eval.forecast_tune [--start 2015-01-01 --end 2017-01-01] [--zone-column district]

Each variant is scored month by month (refit each month on the history before it) on the
window; the table gives hourly and daily RMSE and coverage. The defaults in ForecastConfig
were chosen from this run on St. Louis 2015-2016 (city-wide and per district); 2017-2018 is
then the untuned check (docs/forecast.md).
"""

from __future__ import annotations

import argparse
import sys

from tools.eval.forecast import evaluate
from tools.eval.theft import stlouis_history
from tools.hub.forecast import ForecastConfig, to_hour

VARIANTS: dict[str, dict] = {
    "defaults": {},
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
    p.add_argument("--start", default="2015-01-01")
    p.add_argument("--end", default="2017-01-01")
    p.add_argument("--zone-column", default=None)
    p.add_argument("--only", nargs="*", help="variant names to run (default all)")
    args = p.parse_args(argv)
    history = stlouis_history(args.zone_column)
    t0, t1 = to_hour(args.start, "--start"), to_hour(args.end, "--end")
    print("| variant | rmse_hour | rmse_day | coverage80 | top20_share |")
    print("|---|---:|---:|---:|---:|")
    for name, change in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        m = evaluate(history, t0, t1, ForecastConfig(**change))["model"]
        print(
            f"| {name} | {m['rmse_hour']:.5f} | {m['rmse_day']:.4f} | {m['coverage80']:.3f} "
            f"| {m['top20_share']:.3f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
