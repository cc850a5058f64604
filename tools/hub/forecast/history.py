"""Incident history: one row per incident (local wall-clock time, zone), read and checked.

Times are local wall-clock hours (naive): a store staffs by its own clock, so the model works
in wall-clock hours and an offset in the input, if any, is dropped, not converted. Hours are
held as int64 hours since 1970-01-01T00 (local) so the hot paths stay numpy-vectorised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ONE_ZONE = "all"
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


class HistoryError(ValueError):
    """A history that cannot be used; the message names the file, row or argument."""


@dataclass(frozen=True)
class History:
    """Incidents as hour indices and zone indices, plus what the reader noticed."""

    hours: np.ndarray  # int64 hours since 1970-01-01T00, local wall clock
    zone_idx: np.ndarray  # int32 index into zones
    zones: tuple[str, ...]
    duplicates: tuple[int, ...] = field(default=())  # 1-based file row numbers (header = 1)

    def __post_init__(self) -> None:
        if len(self.hours) != len(self.zone_idx):
            raise ValueError("hours and zone_idx differ in length")

    @property
    def first_hour(self) -> int:
        return int(self.hours.min())

    def before(self, hour: int) -> History:
        """Only the incidents strictly before ``hour`` (zones kept: they were seen)."""
        keep = self.hours < hour
        return History(self.hours[keep], self.zone_idx[keep], self.zones, self.duplicates)

    def counts(self, start: int, end: int) -> np.ndarray:
        """Incidents per zone per hour in [start, end): an int array (zones, hours)."""
        keep = (self.hours >= start) & (self.hours < end)
        out = np.zeros((len(self.zones), end - start), dtype=np.int64)
        np.add.at(out, (self.zone_idx[keep], self.hours[keep] - start), 1)
        return out


def to_hour(value: str | np.datetime64 | pd.Timestamp, what: str = "time") -> int:
    """An ISO 8601 local time (a date alone means its midnight) as an hour index; the time must
    fall on a whole hour. ``what`` names the argument in the error."""
    text = str(value).strip()
    try:
        ts = pd.Timestamp(_OFFSET.sub("", text))
    except (ValueError, TypeError) as e:
        raise HistoryError(f"{what}: {text!r} is not an ISO 8601 time ({e})") from None
    if ts is pd.NaT:
        raise HistoryError(f"{what}: {text!r} is not an ISO 8601 time")
    if ts.minute or ts.second or ts.microsecond or ts.nanosecond:
        raise HistoryError(f"{what}: {text!r} is not on a whole hour (the forecast is hourly)")
    return int(np.datetime64(ts.to_datetime64(), "h").astype(np.int64))


def hour_to_iso(hours: np.ndarray) -> np.ndarray:
    """Hour indices as ISO 8601 local times, ``YYYY-MM-DDTHH:00``."""
    return np.datetime_as_string(np.asarray(hours, dtype="datetime64[h]"), unit="m")


def from_records(
    times: list, zones: list[str] | None = None, known_zones: tuple[str, ...] = ()
) -> History:
    """A history from Python datetimes / ISO strings (and zone names), e.g. from the hub's db;
    ``known_zones`` are forecast too, even without an incident yet."""
    if not times and known_zones:
        return History(np.zeros(0, np.int64), np.zeros(0, np.int32), tuple(sorted(known_zones)))
    frame = pd.DataFrame({"time": [str(t) for t in times]})
    if zones is not None:
        frame["zone"] = [str(z) for z in zones]
    history = _from_frame(frame, "zone" if zones is not None else None, "records")
    names = tuple(sorted(set(history.zones) | set(known_zones)))
    if names == history.zones:
        return history
    remap = np.array([names.index(z) for z in history.zones], dtype=np.int32)
    return History(history.hours, remap[history.zone_idx], names, history.duplicates)


def read_history_csv(path: str | Path, zone_column: str | None = None) -> History:
    """Read HISTORY.csv (a ``time`` column, ISO 8601 local; optionally a zone column)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise HistoryError(f"{path}: empty file (expected a header with a 'time' column)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise HistoryError(f"{path}: not a readable CSV ({e})") from None
    return _from_frame(frame, zone_column, str(path))


def _from_frame(frame: pd.DataFrame, zone_column: str | None, where: str) -> History:
    if "time" not in frame.columns:
        raise HistoryError(
            f"{where}: no 'time' column (columns: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    if zone_column is not None and zone_column not in frame.columns:
        raise HistoryError(
            f"{where}: no zone column {zone_column!r} (--zone-column; columns: "
            f"{', '.join(map(str, frame.columns))})"
        )
    if frame.empty:
        raise HistoryError(f"{where}: no incidents (the history has a header but no rows)")
    text = frame["time"].astype(str).str.strip().str.replace(_OFFSET, "", regex=True)
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        more = f" ({len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise HistoryError(
            f"{where}: row {row + 2}: time {frame['time'].iloc[row]!r} is not an ISO 8601 "
            f"local time (e.g. 2017-03-01T14:05){more}"
        )
    hours = parsed.to_numpy().astype("datetime64[h]").astype(np.int64)
    if zone_column is None:
        names = np.full(len(frame), ONE_ZONE, dtype=object)
    else:
        names = frame[zone_column].astype(str).str.strip().to_numpy()
        empty = np.flatnonzero(names == "")
        if len(empty):
            raise HistoryError(
                f"{where}: row {int(empty[0]) + 2}: empty zone in column {zone_column!r}"
            )
    zones, zone_idx = np.unique(names.astype(str), return_inverse=True)
    dup = frame.duplicated(keep="first").to_numpy()
    duplicates = tuple(int(i) + 2 for i in np.flatnonzero(dup))
    return History(hours, zone_idx.astype(np.int32), tuple(str(z) for z in zones), duplicates)
