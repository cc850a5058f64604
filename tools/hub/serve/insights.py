"""Insights in the console: peak times (hour-of-week grid, next two weeks with intervals), a
floor heat map of dwell and incidents, and the manager's weekly summary (JSON, CSV, print).

Routes under ``/api/insights/`` (contract: docs/forecast.md), mounted by ``api.build_app``;
the page itself is ``/insights`` (static/insights.html, no build step, nothing from outside).
The forecast comes from the nightly refresher's store (``[forecast]`` in --store); the
observed side from the hub's alerts (incidents) and the units' footfall summaries (dwell).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from tools.hub.serve import views

if TYPE_CHECKING:
    from tools.hub.forecast.history import History
    from tools.hub.forecast.store import StoredForecast
    from tools.hub.serve.service import Hub

STATIC = Path(__file__).with_name("static")
HISTORY_WEEKS = 52  # the observed grid: mean per hour of week over the last year
MAX_DAYS = 366


def _err(status: int, message: str) -> HTTPException:
    return HTTPException(status, json.dumps({"error": message}))


def _who(request: Request, role: str) -> None:
    """The console's one session check (api._who, handed over by ``routes``)."""
    request.app.state.insights_who(request, role)


def _days(request: Request, default: int = 7) -> int:
    v = request.query_params.get("days", str(default))
    if not v.isdigit() or not 0 < int(v) <= MAX_DAYS:
        raise _err(400, f"days={v!r}: 1..{MAX_DAYS}")
    return int(v)


def latest_forecast(hub: Hub) -> StoredForecast:
    """The newest stored run; 404 with what to do when the forecaster is off or has not run."""
    if hub.forecast is None:
        raise _err(404, "the forecast is off: add a [forecast] table to --store (docs/forecast.md)")
    stored = hub.forecast.store.latest()
    if stored is None:
        raise _err(404, "no forecast stored yet: the first refit runs at start once alerts exist")
    return stored


def alert_history(hub: Hub, stored: StoredForecast, weeks: int = HISTORY_WEEKS) -> History | None:
    """The alerts of the ``weeks`` before the forecast's start, as a forecast History."""
    from tools.hub.forecast.history import from_records
    from tools.hub.serve.service import AlertIncidents

    until = dt.datetime.fromisoformat(stored.start)
    rows = AlertIncidents(hub.db).incident_times(until - dt.timedelta(weeks=weeks), until)
    if not rows:
        return None
    return from_records([t for t, _ in rows], [z for _, z in rows])


def peak_times(stored: StoredForecast, history: History | None, zone: str | None) -> dict:
    """Heat grid per zone (expected and observed) and the next 14 days, hourly, with intervals."""
    from tools.hub.forecast.console import heat_grid, next_two_weeks

    if zone is not None and zone not in stored.zones:
        raise _err(404, f"zone {zone!r} is not forecast (zones: {', '.join(stored.zones)})")
    grid = heat_grid(stored, history, HISTORY_WEEKS)
    hours = [r for r in next_two_weeks(stored) if zone is None or r["zone"] == zone]
    if zone is not None:
        grid["zones"] = {zone: grid["zones"][zone]}
    return {
        "made_at": stored.made_at,
        "start": stored.start,
        "end": stored.end,
        "zones": list(stored.zones) if zone is None else [zone],
        "interval": 0.8,
        "grid": grid,
        "hours": hours,
    }


def floor_heat(con: sqlite3.Connection, store: Any, since: float, until: float) -> dict:
    """Per unit and zone of its camera sketch: visits, dwell (person-seconds, from footfall
    summaries) and incidents (alerts opened) in [since, until), each also as a 0-1 intensity
    against the busiest zone; zones with alerts but no sketch are listed apart."""
    plan = views.floor(con, store, [])
    dwell: dict[tuple[str, str], dict] = defaultdict(lambda: {"visits": 0, "dwell_s": 0.0})
    for r in views.footfall(con, since)["zones"]:
        if r["hour"] >= until:
            continue
        acc = dwell[(r["unit"], r["zone"])]
        acc["visits"] += r["visits"]
        acc["dwell_s"] += (r["mean_dwell_s"] or 0.0) * r["visits"]
    incidents: dict[tuple[str, str], int] = defaultdict(int)
    for unit, zone, n in con.execute(
        "SELECT unit, COALESCE(zone, 'store'), COUNT(*) FROM alerts "
        "WHERE opened_at >= ? AND opened_at < ? GROUP BY 1, 2",
        (since, until),
    ):
        incidents[(unit, zone)] = n
    units, sketched = [], set()
    for u in plan["units"]:
        zones = []
        for z in u["zones"]:
            key = (u["unit"], str(z["name"]))
            sketched.add(key)
            d = dwell.get(key, {"visits": 0, "dwell_s": 0.0})
            zones.append({**z, **d, "dwell_s": round(d["dwell_s"], 1), "incidents": incidents[key]})
        units.append({k: u[k] for k in ("site", "unit", "name", "x", "y")} | {"zones": zones})
    max_dwell = max((z["dwell_s"] for u in units for z in u["zones"]), default=0.0)
    max_inc = max((z["incidents"] for u in units for z in u["zones"]), default=0)
    for u in units:
        for z in u["zones"]:
            z["dwell_heat"] = round(z["dwell_s"] / max_dwell, 4) if max_dwell else 0.0
            z["incident_heat"] = round(z["incidents"] / max_inc, 4) if max_inc else 0.0
    other = [
        {"unit": unit, "zone": zone, "incidents": n}
        for (unit, zone), n in sorted(incidents.items())
        if (unit, zone) not in sketched
    ]
    return {
        "since": since,
        "until": until,
        "image": plan["image"],
        "meters_per_pixel": plan["meters_per_pixel"],
        "units": units,
        "unsketched_incidents": other,
    }


def weekly_rows(hub: Hub, stored: StoredForecast) -> list[dict]:
    """The forecast's weekly summary per zone, with last week's visits and mean dwell in the
    zones of that name (all units) beside it."""
    from tools.hub.forecast.console import weekly_summary

    history = alert_history(hub, stored, weeks=1)
    rows = weekly_summary(stored, history)
    until = dt.datetime.fromisoformat(stored.start).timestamp()
    visits: dict[str, int] = defaultdict(int)
    dwell: dict[str, float] = defaultdict(float)
    for r in views.footfall(hub.db.read(), until - 7 * 86400)["zones"]:
        if r["hour"] < until:
            visits[r["zone"]] += r["visits"]
            dwell[r["zone"]] += (r["mean_dwell_s"] or 0.0) * r["visits"]
    for row in rows:
        z = row["zone"]
        if row["last_week"] == "":
            row["last_week"] = 0  # no alert at all in the week before
        row["visits_last_week"] = visits.get(z, "")
        row["mean_dwell_s_last_week"] = round(dwell[z] / visits[z], 1) if visits.get(z) else ""
    return rows


def rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["zone"])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# -- endpoints ------------------------------------------------------------------------------


def get_peak_times(request: Request) -> Response:
    _who(request, "guard")
    hub: Hub = request.app.state.hub
    stored = latest_forecast(hub)
    zone = request.query_params.get("zone") or None
    return JSONResponse(peak_times(stored, alert_history(hub, stored), zone))


def get_floor_heat(request: Request) -> Response:
    _who(request, "guard")
    hub: Hub = request.app.state.hub
    until = dt.datetime.now().timestamp()
    since = until - _days(request) * 86400
    return JSONResponse(floor_heat(hub.db.read(), hub.cfg.store, since, until))


def get_weekly(request: Request) -> Response:
    _who(request, "manager")
    hub: Hub = request.app.state.hub
    stored = latest_forecast(hub)
    return JSONResponse(
        {"made_at": stored.made_at, "start": stored.start, "rows": weekly_rows(hub, stored)}
    )


def get_weekly_csv(request: Request) -> Response:
    _who(request, "manager")
    hub: Hub = request.app.state.hub
    stored = latest_forecast(hub)
    name = f"vigil-weekly-{stored.start[:10]}.csv"
    return Response(
        rows_csv(weekly_rows(hub, stored)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def page(request: Request) -> Response:
    return FileResponse(STATIC / "insights.html")


def routes() -> list[Route]:
    """The insights routes, for ``build_app`` (which sets ``app.state.insights_who`` to its
    session check: 401 without a session, 403 below the role)."""
    return [
        Route("/insights", page),
        Route("/api/insights/peak-times", get_peak_times),
        Route("/api/insights/floor-heat", get_floor_heat),
        Route("/api/insights/weekly-summary", get_weekly),
        Route("/api/insights/weekly-summary.csv", get_weekly_csv),
    ]
