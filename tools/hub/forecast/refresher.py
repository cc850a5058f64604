"""Nightly forecast refresh for the hub service: read incident times, refit, store.

`vigil-hub serve` mounts it: ``ForecastRefresher(reader, store, RefresherConfig())``, then
``start()`` with the service and ``stop()`` at shutdown; ``refresh()`` runs one now. The
reader is anything with ``incident_times(since, until)``; the hub's database gives one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from tools.hub.forecast.history import from_records, hour_to_iso, to_hour
from tools.hub.forecast.model import ForecastConfig, Forecaster
from tools.hub.forecast.store import ForecastStore, StoredForecast

log = logging.getLogger("vigil.hub.forecast")


class IncidentReader(Protocol):
    """The hub database, as the forecaster needs it."""

    def incident_times(
        self, since: dt.datetime, until: dt.datetime
    ) -> Iterable[tuple[dt.datetime | str, str]]:
        """(local wall-clock time, zone) of each incident that occurred in [since, until)."""
        ...


class RefresherConfig(BaseModel):
    """`[forecast]` settings of the hub service."""

    model_config = ConfigDict(extra="forbid")
    refresh_hour: int = Field(3, ge=0, le=23, description="local hour of the nightly refit")
    horizon_days: int = Field(14, ge=1, le=90, description="days forecast from the refit")
    history_weeks: int = Field(260, ge=4, le=2000, description="history read from the db")
    zones: list[str] = Field(
        default_factory=list, description="zones always forecast, even with no incident yet"
    )
    model: ForecastConfig = Field(default_factory=ForecastConfig)


class ForecastRefresher:
    """Refits once a night after ``refresh_hour`` (and at start when nothing is stored)."""

    def __init__(
        self,
        reader: IncidentReader,
        store: ForecastStore,
        config: RefresherConfig | None = None,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        self.reader, self.store = reader, store
        self.config = config or RefresherConfig()
        self.clock = clock
        self.last_error: str | None = None
        self._last_day: dt.date | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self, now: dt.datetime | None = None) -> StoredForecast | None:
        """Refit on the incidents before this hour, forecast ``horizon_days``, store the run.
        With no incident at all, nothing is stored and None is returned."""
        now = (now or self.clock()).replace(tzinfo=None)
        t0_dt = now.replace(minute=0, second=0, microsecond=0)
        since = t0_dt - dt.timedelta(weeks=self.config.history_weeks)
        rows = list(self.reader.incident_times(since, t0_dt))
        if not rows:
            log.info("forecast: no incidents yet, nothing to forecast")
            return None
        history = from_records(
            [r[0] for r in rows], [str(r[1]) for r in rows], tuple(self.config.zones)
        )
        t0 = to_hour(t0_dt.isoformat(), "now")
        model = Forecaster(self.config.model).fit(history.before(t0), t0)
        forecast = model.predict(t0 + 24 * self.config.horizon_days)
        self.store.save(now.isoformat(timespec="seconds"), forecast, model.explain())
        log.info(
            "forecast: %d zones x %d h from %s, %d incidents",
            len(forecast.zones),
            len(forecast.hours),
            hour_to_iso(forecast.hours[:1])[0],
            len(history.hours),
        )
        return self.store.latest()

    def due(self, now: dt.datetime) -> bool:
        """True when tonight's refit has not run yet (or nothing was run since start)."""
        if self._last_day is None:
            return True
        return now.hour >= self.config.refresh_hour and now.date() > self._last_day

    def run_pending(self, now: dt.datetime | None = None) -> bool:
        """Refresh when due; errors are logged and kept in ``last_error``, the stored forecast
        stays as it was. Returns whether a refresh was attempted."""
        now = now or self.clock()
        if not self.due(now):
            return False
        self._last_day = now.date()
        try:
            self.refresh(now)
            self.last_error = None
        except Exception as e:  # a bad night must not stop the service
            self.last_error = f"{type(e).__name__}: {e}"
            log.exception("forecast refresh failed; the last stored forecast stays")
        return True

    def start(self, poll_s: float = 60.0) -> None:
        """Run in a daemon thread, checking every ``poll_s`` seconds."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self.run_pending()
                self._stop.wait(poll_s)

        self._thread = threading.Thread(target=loop, name="forecast-refresh", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
