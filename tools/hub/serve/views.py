"""Read-side queries behind the API: units with their health, events, footfall, floor plan."""

from __future__ import annotations

import sqlite3
import tomllib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from tools.hub.serve.db import loads
from tools.hub.serve.live import event_view

# A place for floor positions (issue 13's fusion registers one): () -> list of
# {"track", "x", "y", "unit", "time"} in plan coordinates.
FloorSource = Callable[[], list[dict]]


def units(con: sqlite3.Connection, known: set[str] | None = None) -> list[dict]:
    """Every unit that ever reported, with its state (``online``/``offline``/``stopped``/
    ``alert``) and health figures."""
    out = []
    for r in con.execute("SELECT * FROM units ORDER BY site, unit"):
        birth, metrics = loads(r["birth"]) or {}, loads(r["metrics"]) or {}
        outbox = metrics.get("outbox") or {}
        out.append(
            {
                "unit": r["unit"],
                "site": r["site"],
                "state": r["state"] or "unknown",
                "last_seen": r["last_seen"],
                "session": r["session"],
                "status_time": r["status_time"],
                "reasons": loads(r["reasons"]) or [],
                "fps": metrics.get("fps"),
                "outbox_depth": outbox.get("depth"),
                "outbox_dropped": outbox.get("dropped"),
                "cpu_temp_c": metrics.get("cpu_temp_c"),
                "metrics_time": metrics.get("time"),
                "firmware": birth.get("firmware"),
                "models": birth.get("models", []),
                "config_hash": birth.get("config_hash"),
                "capabilities": birth.get("capabilities", []),
                "commands": birth.get("commands", []),
                "known": known is None or not known or r["unit"] in known,
            }
        )
    return out


def unit_exists(con: sqlite3.Connection, site: str | None, unit: str) -> str | None:
    """The unit's site when it ever reported (``site`` may be None: any)."""
    rows = con.execute("SELECT site FROM units WHERE unit=?", (unit,)).fetchall()
    sites = [r[0] for r in rows if site in (None, r[0])]
    return sites[0] if len(sites) == 1 else None


def events(
    con: sqlite3.Connection,
    *,
    since: float | None = None,
    until: float | None = None,
    unit: str | None = None,
    type: str | None = None,
    zone: str | None = None,
    rule: str | None = None,
    after_id: int | None = None,
    limit: int = 200,
    raw: bool = False,
) -> list:
    """Stored events newest first (``since``/``until`` on the hub's receipt time), or oldest
    first after ``after_id``; ``raw`` gives each as JSON text (no decode and re-encode)."""
    where, params = [], []
    window = after_id is None and (since is not None or until is not None)
    for col, value in (("unit", unit), ("type", type), ("zone", zone), ("rule", rule)):
        if value:  # in a time window "+col" keeps the planner on the receipt-time index
            where.append(f"{'+' if window else ''}{col}=?")
            params.append(value)
    for cond, value in (("received_at>=?", since), ("received_at<?", until), ("id>?", after_id)):
        if value is not None:
            where.append(cond)
            params.append(value)
    sql = "SELECT id, site, received_at, body FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if after_id is not None:
        order = "id ASC"
    elif window:
        order = "received_at DESC, id DESC"
    else:
        order = "id DESC"
    rows = con.execute(f"{sql} ORDER BY {order} LIMIT ?", (*params, limit)).fetchall()
    if raw:
        return [
            f'{{"id":{r["id"]},"received_at":{r["received_at"]!r},{r["body"][1:]}' for r in rows
        ]
    return [event_view(r["id"], r["site"], r["received_at"], loads(r["body"])) for r in rows]


def footfall(con: sqlite3.Connection, since: float | None = None, unit: str | None = None) -> dict:
    """Per zone and hour (of the hub's receipt time): visits ended, mean dwell, peak people;
    per line and hour: crossings in and out. From the units' ``footfall`` summary events."""
    sql = (
        "SELECT unit, received_at, json_extract(body, '$.explain') AS explain FROM events "
        "WHERE type='footfall'"
    )
    params: list[Any] = []
    if since is not None:
        sql += " AND received_at>=?"
        params.append(since)
    if unit:
        sql += " AND unit=?"
        params.append(unit)
    zones: dict[tuple, dict] = defaultdict(lambda: {"visits": 0, "dwell_s": 0.0, "max_people": 0})
    lines: dict[tuple, dict] = defaultdict(lambda: {"in": 0, "out": 0})
    for r in con.execute(sql, params):
        hour = int(r["received_at"] // 3600 * 3600)
        ex = loads(r["explain"]) or {}
        for name, z in (ex.get("zones") or {}).items():
            acc = zones[(r["unit"], name, hour)]
            acc["visits"] += z.get("visits_ended") or 0
            acc["dwell_s"] += (z.get("mean_dwell_s") or 0) * (z.get("visits_ended") or 0)
            acc["max_people"] = max(acc["max_people"], z.get("max_people") or 0)
        for name, c in (ex.get("lines") or {}).items():
            acc = lines[(r["unit"], name, hour)]
            acc["in"] += c.get("in", 0)
            acc["out"] += c.get("out", 0)
    return {
        "zones": [
            {"unit": u, "zone": z, "hour": h, "visits": a["visits"], "max_people": a["max_people"],
             "mean_dwell_s": a["dwell_s"] / a["visits"] if a["visits"] else None}
            for (u, z, h), a in sorted(zones.items())
        ],
        "lines": [
            {"unit": u, "line": n, "hour": h, **a} for (u, n, h), a in sorted(lines.items())
        ],
    }  # fmt: skip


def floor(con: sqlite3.Connection, store: Any, sources: list[FloorSource]) -> dict:
    """The floor plan (image and scale when configured), each unit's zone sketch from its
    config (normalised image coordinates) and live positions from the registered sources."""
    placement = {u.unit: u for u in store.units}
    sketches = []
    for r in con.execute("SELECT site, unit, config FROM units ORDER BY site, unit"):
        zones, lines = [], []
        if r["config"]:
            try:
                cfg = tomllib.loads(r["config"])
            except tomllib.TOMLDecodeError:
                cfg = {}
            zones = [
                {"name": z.get("name"), "purpose": z.get("purpose"), "polygon": z.get("polygon")}
                for z in cfg.get("zones", [])
            ]
            lines = [
                {"name": ln.get("name"), "points": ln.get("points")} for ln in cfg.get("lines", [])
            ]
        p = placement.get(r["unit"])
        sketches.append(
            {"site": r["site"], "unit": r["unit"], "zones": zones, "lines": lines,
             "name": p.name if p else None, "x": p.x if p else None, "y": p.y if p else None}
        )  # fmt: skip
    positions = [pos for src in sources for pos in src()]
    return {
        "image": "/api/floor/image" if store.floor.image else None,
        "meters_per_pixel": store.floor.meters_per_pixel,
        "units": sketches,
        "positions": positions,
    }
