"""The St. Louis shoplifting file as a HISTORY.csv for `vigil-eval forecast`.

    python -m tools.eval.theft --out history.csv     # time,district,neighborhood

Choices (docs/forecast.md):
* Times stay local wall-clock (America/Chicago) as recorded: a store staffs by its own clock,
  and the file has no offsets. The repeated autumn hour counts once, the missing spring hour
  has none, as in the source.
* Rows identical in every field (time to the minute, district, neighbourhood, store text,
  description) are one record exported twice: kept once, and counted in the report.
* Times on the hour (14 %) and in hour 0 (about 1 %, "unknown time" entries) are kept: they
  are real incidents and the hour-of-week profile learns the midnight excess.
* Late reports: the file has occurrence times only, so an evaluation cut at T0 sees incidents
  that a live forecaster would learn of only later; the recent level's 13-week half-life keeps
  its weight on the last few weeks small.
* District 0 (3 rows, no district recorded) stays as zone "0". Districts 7-9 end in 2013 (the
  2014 redistricting): they stay as zones, and their recent level falls to near zero.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from firmware.paths import eval_data_dir
from tools.hub.forecast import History, HistoryError, from_records

FILE = "theft/stlouis_shoplifting_2008_2018.csv"
COLUMNS = ["time", "district", "neighborhood"]


def stlouis_frame(path: Path | None = None) -> tuple[pd.DataFrame, int]:
    """The history rows (sorted by time) and how many duplicate records were dropped."""
    path = path or eval_data_dir() / FILE
    if not path.exists():
        raise HistoryError(f"{path}: not found (set VIGIL_EVAL_DATA)")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    bad = pd.to_datetime(raw["time"], errors="coerce", format="ISO8601").isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise HistoryError(f"{path}: row {row + 2}: time {raw['time'].iloc[row]!r} unparseable")
    dup = raw.duplicated()
    out = raw.loc[~dup, COLUMNS].sort_values("time", kind="stable").reset_index(drop=True)
    return out, int(dup.sum())


def stlouis_history(zone_column: str | None = None) -> History:
    """The St. Louis history in memory, one zone or per ``zone_column``."""
    frame, _ = stlouis_frame()
    zones = frame[zone_column].tolist() if zone_column else None
    return from_records(frame["time"].tolist(), zones)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.eval.theft", description=__doc__)
    p.add_argument("--source", type=Path, help=f"default $VIGIL_EVAL_DATA/{FILE}")
    p.add_argument("--out", type=Path, required=True, help="HISTORY.csv to write")
    args = p.parse_args(argv)
    try:
        frame, dropped = stlouis_frame(args.source)
    except (HistoryError, OSError) as e:
        print(f"theft: error: {e}", file=sys.stderr)
        return 2
    frame.to_csv(args.out, index=False)
    print(f"{args.out}: {len(frame)} incidents, {dropped} duplicate records dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
