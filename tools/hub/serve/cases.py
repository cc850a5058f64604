"""Cases: one per incident, grouping the alerts and events of several units, the store's
inputs (EAS gates, doors, tills) and the team's response, by time, zone and person.

Grouping is an ingest stage (inside the writer's transaction, so a case never misses an
event that was stored). An alert-opening event joins the open case it matches, or opens one;
its updates, end and deterrent actions follow it; store inputs and till events join a case
they match but never open one. A case matches when it was active within ``window_s`` and
shares a zone name (zone names are store-wide by convention), a local track (same unit and
session) or a store-wide person id. A case closes when every alert in it is resolved.
Each change is queued for the webhook in the same transaction (docs/cases.md).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from tools.hub.serve.db import dumps, loads
from tools.hub.serve.ingest import Message

STORE_TYPES = frozenset({"store_input", "till"})
MAX_TRACKS = 200  # track keys kept per case for matching


def _track_keys(unit: str, b: dict) -> set[str]:
    """Keys that identify the event's people: unit/session/local track, and store-wide ids."""
    keys = {f"{unit}/{b.get('session')}/{t}" for t in b.get("track_ids") or []}
    for g in b.get("global_ids") or (b.get("explain") or {}).get("global_ids") or []:
        keys.add(f"g/{g}")
    return keys


class CaseStage:
    """Ingest stage (after the alert stage): groups events into cases."""

    def __init__(self, window_s: float = 300.0, webhook: bool = False):
        self.window_s = window_s
        self.webhook = webhook

    def __call__(self, con: sqlite3.Connection, msg: Message) -> None:
        if msg.kind != "events" or msg.row is None:
            return
        b = msg.body
        at = msg.received_at
        case_id: int | None = None
        alert = msg.alert
        if alert is not None and alert["change"] != "opened":
            row = con.execute(
                "SELECT case_id FROM case_items WHERE alert_id=? LIMIT 1", (alert["id"],)
            ).fetchone()
            case_id = row[0] if row else None
        if case_id is None and (alert is not None or b["type"] in STORE_TYPES):
            case_id = self._match(con, msg.site, msg.unit, b, at)
            if case_id is None and alert is not None:
                case_id = self._open(con, msg, b, at)
        if case_id is None:
            if b.get("type") == "incident":
                self._clip_hash(con, msg.unit, b)
            return
        kind = "alert" if alert is not None and alert["change"] == "opened" else b["type"]
        con.execute(
            "INSERT INTO case_items (case_id, at, kind, event_row, alert_id, unit) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (case_id, at, kind, msg.row, alert["id"] if alert else None, msg.unit),
        )
        if b.get("incident_id"):
            con.execute(
                "INSERT OR IGNORE INTO case_clips (case_id, unit, incident_id) VALUES (?, ?, ?)",
                (case_id, msg.unit, b["incident_id"]),
            )
        self._touch(con, case_id, msg, b, at, "updated")

    def _match(self, con, site: str, unit: str, b: dict, at: float) -> int | None:
        zone = b.get("zone")
        keys = _track_keys(unit, b)
        rows = con.execute(
            "SELECT id, zones, tracks FROM cases WHERE site=? AND state='open' AND updated_at>=? "
            "ORDER BY updated_at DESC",
            (site, at - self.window_s),
        ).fetchall()
        for r in rows:
            if (zone and zone in loads(r["zones"])) or keys & set(loads(r["tracks"])):
                return r["id"]
        return None

    def _open(self, con, msg: Message, b: dict, at: float) -> int:
        title = b["type"].replace("_", " ") + (f" in {b['zone']}" if b.get("zone") else "")
        cur = con.execute(
            "INSERT INTO cases (site, state, opened_at, updated_at, title, zones, units, tracks, "
            "version) VALUES (?, 'open', ?, ?, ?, '[]', '[]', '[]', 0)",
            (msg.site, at, at, title),
        )
        return int(cur.lastrowid)

    def _touch(self, con, case_id: int, msg: Message, b: dict, at: float, change: str) -> None:
        r = con.execute(
            "SELECT zones, units, tracks, version FROM cases WHERE id=?", (case_id,)
        ).fetchone()
        zones, units, tracks = loads(r["zones"]), loads(r["units"]), loads(r["tracks"])
        if b.get("zone") and b["zone"] not in zones:
            zones.append(b["zone"])
        if msg.unit not in units:
            units.append(msg.unit)
        tracks = sorted(set(tracks) | _track_keys(msg.unit, b))[-MAX_TRACKS:]
        if r["version"] == 0:
            change = "opened"
        con.execute(
            "UPDATE cases SET updated_at=?, zones=?, units=?, tracks=?, version=version+1 WHERE id=?",
            (at, dumps(zones), dumps(units), dumps(tracks), case_id),
        )
        if self.webhook:
            enqueue(con, case_id, change, at)

    def _clip_hash(self, con, unit: str, b: dict) -> None:
        """An ``incident`` event from a unit names a clip's sha256 once it is sealed."""
        ex = b.get("explain") or {}
        if b.get("incident_id") and ex.get("sha256"):
            con.execute(
                "UPDATE case_clips SET sha256=? WHERE unit=? AND incident_id=?",
                (ex["sha256"], unit, b["incident_id"]),
            )


def alert_changed(con: sqlite3.Connection, alert_id: int, at: float, webhook: bool) -> None:
    """After a person's ack/resolve/escalate: the case records it; closes when all resolved."""
    row = con.execute(
        "SELECT case_id FROM case_items WHERE alert_id=? LIMIT 1", (alert_id,)
    ).fetchone()
    if row is None:
        return
    case_id = row[0]
    open_alerts = con.execute(
        "SELECT COUNT(*) FROM alerts WHERE state != 'resolved' AND id IN "
        "(SELECT alert_id FROM case_items WHERE case_id=? AND alert_id IS NOT NULL)",
        (case_id,),
    ).fetchone()[0]
    closed = open_alerts == 0
    con.execute(
        "UPDATE cases SET updated_at=?, version=version+1, state=?, "
        "closed_at=CASE WHEN ? THEN ? ELSE closed_at END WHERE id=?",
        (at, "closed" if closed else "open", closed, at, case_id),
    )
    if webhook:
        enqueue(con, case_id, "closed" if closed else "updated", at)


def enqueue(con: sqlite3.Connection, case_id: int, change: str, at: float) -> None:
    """Queue the case as it is now for the webhook (same transaction as the change)."""
    body = {"change": change, "case": summary(con, case_id), "at": at}
    con.execute(
        "INSERT INTO webhook_outbox (case_id, change, body, created_at, next_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (case_id, change, dumps(body), at, time.time()),
    )


def summary(con: sqlite3.Connection, case_id: int) -> dict[str, Any]:
    """The case in brief (the `case list` line and the webhook payload's ``case``)."""
    r = con.execute("SELECT * FROM cases WHERE id=?", (case_id,)).fetchone()
    if r is None:
        raise LookupError(f"no case {case_id}")
    alerts = con.execute(
        "SELECT a.id, a.type, a.unit, a.zone, a.severity, a.state, a.outcome FROM alerts a "
        "WHERE a.id IN (SELECT alert_id FROM case_items WHERE case_id=?) ORDER BY a.id",
        (case_id,),
    ).fetchall()
    counts = dict(
        con.execute(
            "SELECT kind, COUNT(*) FROM case_items WHERE case_id=? GROUP BY kind", (case_id,)
        ).fetchall()
    )
    clips = con.execute(
        "SELECT unit, incident_id, sha256 FROM case_clips WHERE case_id=? ORDER BY unit, incident_id",
        (case_id,),
    ).fetchall()
    return {
        "id": r["id"],
        "site": r["site"],
        "state": r["state"],
        "title": r["title"],
        "opened_at": r["opened_at"],
        "updated_at": r["updated_at"],
        "closed_at": r["closed_at"],
        "version": r["version"],
        "zones": loads(r["zones"]),
        "units": loads(r["units"]),
        "alerts": [dict(a) for a in alerts],
        "items": counts,
        "clips": [dict(c) for c in clips],
    }


def list_cases(con: sqlite3.Connection, limit: int = 1000) -> list[dict[str, Any]]:
    ids = [r[0] for r in con.execute("SELECT id FROM cases ORDER BY id DESC LIMIT ?", (limit,))]
    return [summary(con, i) for i in ids]


def case_items(con: sqlite3.Connection, case_id: int) -> list[dict[str, Any]]:
    """Every event body of the case in order, with its unit and receipt time."""
    rows = con.execute(
        "SELECT ci.kind, ci.at, ci.unit, e.body FROM case_items ci "
        "JOIN events e ON e.id = ci.event_row WHERE ci.case_id=? ORDER BY ci.id",
        (case_id,),
    ).fetchall()
    return [
        {"kind": r["kind"], "received_at": r["at"], "unit": r["unit"], "event": loads(r["body"])}
        for r in rows
    ]
