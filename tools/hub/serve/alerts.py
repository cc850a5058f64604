"""Alerts: events at or above a severity open one alert per situation (``event_id``); its
updates, end and deterrent actions attach to it; people move it open -> acknowledged ->
resolved (or escalate it), and every change is kept with who, when, note and outcome."""

from __future__ import annotations

import sqlite3
import time

from tools.hub.serve.db import dumps, loads
from tools.hub.serve.ingest import Message

SEVERITIES = ("info", "notice", "warn", "alert")
STATES = ("open", "acknowledged", "resolved")
OUTCOMES = (
    "false_alarm",
    "deterred",
    "police_called",
    "stock_recovered",
    "customer_assisted",
    "resolved_on_site",
    "other",
)


class WorkflowError(ValueError):
    """A state change that is not allowed (already resolved, unknown outcome, ...)."""


class NotFound(LookupError):
    pass


class AlertStage:
    """Ingest stage: opens and updates alerts from stored events (in the same transaction)."""

    def __init__(self, min_severity: int = 2):
        self.min_severity = min_severity

    def __call__(self, con: sqlite3.Connection, msg: Message) -> None:
        if msg.kind != "events" or msg.row is None:
            return
        b = msg.body
        if b["type"] == "deterrent":
            trigger = (b.get("explain") or {}).get("trigger_event")
            if trigger:
                self._attach(con, msg, trigger, "deterrent", b)
            return
        row = con.execute(
            "SELECT id FROM alerts WHERE site=? AND unit=? AND event_id=?",
            (msg.site, msg.unit, b["event_id"]),
        ).fetchone()
        if row is None:
            if b["severity"] < self.min_severity or b["phase"] == "end":
                return
            cur = con.execute(
                "INSERT INTO alerts (site, unit, event_id, type, rule, zone, severity, state, "
                "opened_at, updated_at, ended_at, explain) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                (
                    msg.site, msg.unit, b["event_id"], b["type"], b["rule"], b.get("zone"),
                    b["severity"], msg.received_at, msg.received_at,
                    msg.received_at if b["phase"] == "instant" else None, dumps(b.get("explain")),
                ),
            )  # fmt: skip
            self._earlier(con, cur.lastrowid, msg)
            _history(con, cur.lastrowid, msg.received_at, None, "opened", "open", event=msg.row)
            msg.alert = {"id": cur.lastrowid, "change": "opened"}
            return
        self._attach(con, msg, b["event_id"], b["phase"], b)

    def _earlier(self, con: sqlite3.Connection, alert_id: int, msg: Message) -> None:
        """A situation that became serious later (a notice start, then a warn update): its
        earlier records and the deterrents they triggered go into the new alert's history."""
        rows = con.execute(
            "SELECT id, received_at, phase, NULL AS detail FROM events "
            "WHERE event_id=? AND unit=? AND site=? AND id<? "
            "UNION ALL SELECT id, received_at, 'deterrent', body FROM events "
            "WHERE type='deterrent' AND received_at>=? AND unit=? AND site=? "
            "AND json_extract(body, '$.explain.trigger_event')=? ORDER BY id",
            (msg.body["event_id"], msg.unit, msg.site, msg.row, msg.received_at - 3600,
             msg.unit, msg.site, msg.body["event_id"]),
        ).fetchall()  # fmt: skip
        for r in rows:
            detail = _deterrent(loads(r["detail"])) if r["detail"] else None
            _history(con, alert_id, r["received_at"], None, r["phase"], None, detail=detail,
                     event=r["id"])  # fmt: skip

    def _attach(self, con, msg: Message, event_id: str, action: str, b: dict) -> None:
        row = con.execute(
            "SELECT id, severity FROM alerts WHERE site=? AND unit=? AND event_id=?",
            (msg.site, msg.unit, event_id),
        ).fetchone()
        if row is None:
            return
        if action != "deterrent":
            con.execute(
                "UPDATE alerts SET updated_at=?, severity=MAX(severity, ?), explain=?, "
                "ended_at=CASE WHEN ? = 'end' THEN ? ELSE ended_at END WHERE id=?",
                (msg.received_at, b["severity"], dumps(b.get("explain")), action,
                 msg.received_at, row["id"]),
            )  # fmt: skip
        else:
            con.execute("UPDATE alerts SET updated_at=? WHERE id=?", (msg.received_at, row["id"]))
        detail = _deterrent(b) if action == "deterrent" else None
        _history(con, row["id"], msg.received_at, None, action, None, detail=detail, event=msg.row)
        msg.alert = {"id": row["id"], "change": action}


def _history(
    con, alert_id, at, user, action, state, note=None, outcome=None, detail=None, event=None
):
    """One row of an alert's history; ``event`` is the events.id it came from."""
    if event is not None:
        detail = {**(detail or {}), "event": event}
    con.execute(
        "INSERT INTO alert_history (alert_id, at, user, action, state, note, outcome, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (alert_id, at, user, action, state, note, outcome, dumps(detail) if detail else None),
    )


def change(
    con: sqlite3.Connection,
    alert_id: int,
    action: str,
    user: str,
    note: str = "",
    outcome: str | None = None,
) -> None:
    """ack / resolve / escalate one alert as ``user`` (inside the caller's transaction)."""
    row = con.execute("SELECT state, escalated FROM alerts WHERE id=?", (alert_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    state, now = row["state"], time.time()
    if state == "resolved":
        raise WorkflowError(f"alert {alert_id} is already resolved")
    if action == "ack":
        if state != "open":
            raise WorkflowError(f"alert {alert_id} is already {state}")
        new, label = "acknowledged", "acknowledged"
    elif action == "resolve":
        if outcome not in OUTCOMES:
            raise WorkflowError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        new, label = "resolved", "resolved"
    elif action == "escalate":
        new, label = state, "escalated"
        con.execute("UPDATE alerts SET escalated=escalated+1 WHERE id=?", (alert_id,))
    else:
        raise WorkflowError(f"unknown action {action!r}")
    con.execute(
        "UPDATE alerts SET state=?, updated_at=?, outcome=COALESCE(?, outcome) WHERE id=?",
        (new, now, outcome, alert_id),
    )
    _history(con, alert_id, now, user, label, new, note or None, outcome)


def explain_text(type_: str, zone: str | None, explain: dict | None) -> str:
    """The rule's measured values and thresholds in plain words."""
    where = f" in zone {zone}" if zone else ""
    parts = []
    for key, value in (explain or {}).items():
        if isinstance(value, dict | list):
            continue
        name = key.replace("_", " ")
        if isinstance(value, float):
            value = f"{value:.3g}"
        unit = ""
        for suffix, u in (("_s", " s"), ("_m", " m"), ("_px", " px"), ("_mps", " m/s")):
            if key.endswith(suffix):
                name, unit = name[: -len(suffix)].rstrip(), u
        parts.append(f"{name} {value}{unit}")
    return f"{type_.replace('_', ' ')}{where}" + (": " + ", ".join(parts) if parts else "")


def row_to_alert(con: sqlite3.Connection, row: sqlite3.Row, history: list | None = None) -> dict:
    """The API's view of one alert (contract: docs/console.md); ``history``: its rows of
    alert_history when the caller fetched them already."""
    explain = loads(row["explain"])
    if history is None:
        history = con.execute(
            "SELECT * FROM alert_history WHERE alert_id=? ORDER BY id", (row["id"],)
        ).fetchall()
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "type": row["type"],
        "rule": row["rule"],
        "site": row["site"],
        "unit": row["unit"],
        "zone": row["zone"],
        "severity": SEVERITIES[row["severity"]],
        "state": row["state"],
        "opened_at": row["opened_at"],
        "updated_at": row["updated_at"],
        "ended_at": row["ended_at"],
        "escalated": row["escalated"],
        "outcome": row["outcome"],
        "explain": explain,
        "explain_text": explain_text(row["type"], row["zone"], explain),
        "history": [
            {
                **{k: h[k] for k in ("at", "user", "action", "state", "note", "outcome")},
                "event": (loads(h["detail"]) or {}).get("event"),
            }
            for h in history
        ],
        "deterrents": [
            {"at": h["at"], **{k: v for k, v in loads(h["detail"]).items() if k != "event"}}
            for h in history
            if h["action"] == "deterrent"
        ],
    }


def _deterrent(ev: dict) -> dict:
    ex = ev.get("explain") or {}
    return {
        "action": ex.get("action"),
        "output": ex.get("output"),
        "reason": ex.get("reason"),
        "time": ev.get("time"),
    }


def query(
    con: sqlite3.Connection,
    *,
    state: str | None = None,
    unit: str | None = None,
    zone: str | None = None,
    rule: str | None = None,
    outcome: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> list[dict]:
    """Alerts newest first; ``state`` may also be ``active`` (open or acknowledged)."""
    where, params = [], []
    if state == "active":
        where.append("state IN ('open', 'acknowledged')")
    elif state:
        if state not in STATES:
            raise WorkflowError(f"state {state!r} is not one of active, {', '.join(STATES)}")
        where.append("state=?")
        params.append(state)
    for col, value in (("unit", unit), ("zone", zone), ("rule", rule), ("outcome", outcome)):
        if value:
            where.append(f"{col}=?")
            params.append(value)
    if since is not None:
        where.append("opened_at>=?")
        params.append(since)
    if until is not None:
        where.append("opened_at<?")
        params.append(until)
    sql = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
    rows = con.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
    history: dict[int, list] = {r["id"]: [] for r in rows}
    if rows:
        marks = ",".join("?" * len(rows))
        for h in con.execute(
            f"SELECT * FROM alert_history WHERE alert_id IN ({marks}) ORDER BY id", list(history)
        ):
            history[h["alert_id"]].append(h)
    return [row_to_alert(con, r, history[r["id"]]) for r in rows]


def get(con: sqlite3.Connection, alert_id: int) -> dict:
    row = con.execute("SELECT * FROM alerts WHERE id=?", (alert_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    return row_to_alert(con, row)
