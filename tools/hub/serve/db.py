"""The hub's SQLite database (WAL): schema, versioned migrations, one writer, per-thread readers.

A ``migrations`` table records every schema step applied, so a newer hub opens an older
database by applying the missing steps in order; a database from a newer hub is refused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# (version, name, SQL). Append only: never edit a step that has shipped.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "events, units, alerts, users, sessions",
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY, msg_id TEXT NOT NULL UNIQUE, site TEXT NOT NULL,
            unit TEXT NOT NULL, session INTEGER, seq INTEGER, event_id TEXT, type TEXT,
            rule TEXT, phase TEXT, severity INTEGER, zone TEXT, time REAL,
            received_at REAL NOT NULL, body TEXT NOT NULL);
        CREATE INDEX events_received ON events(received_at);
        CREATE INDEX events_unit ON events(unit, received_at);
        CREATE INDEX events_type ON events(type, received_at);
        CREATE INDEX events_zone ON events(zone, received_at);
        CREATE INDEX events_event_id ON events(event_id);
        CREATE TABLE units (
            site TEXT NOT NULL, unit TEXT NOT NULL, state TEXT, session INTEGER,
            status_time REAL, reasons TEXT, last_seen REAL, birth TEXT, metrics TEXT,
            config TEXT, PRIMARY KEY (site, unit));
        CREATE TABLE seqs (
            site TEXT NOT NULL, unit TEXT NOT NULL, session INTEGER NOT NULL,
            last_seq INTEGER NOT NULL, PRIMARY KEY (site, unit, session));
        CREATE TABLE gaps (
            id INTEGER PRIMARY KEY, site TEXT, unit TEXT, session INTEGER,
            after_seq INTEGER, missing INTEGER, detected_at REAL);
        CREATE TABLE invalid (
            id INTEGER PRIMARY KEY, topic TEXT, problems TEXT, size INTEGER,
            received_at REAL);
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY, site TEXT NOT NULL, unit TEXT NOT NULL,
            event_id TEXT NOT NULL, type TEXT, rule TEXT, zone TEXT, severity INTEGER,
            state TEXT NOT NULL, opened_at REAL NOT NULL, updated_at REAL, ended_at REAL,
            escalated INTEGER NOT NULL DEFAULT 0, outcome TEXT, explain TEXT,
            UNIQUE (site, unit, event_id));
        CREATE INDEX alerts_state ON alerts(state, opened_at);
        CREATE TABLE alert_history (
            id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL REFERENCES alerts(id),
            at REAL NOT NULL, user TEXT, action TEXT NOT NULL, state TEXT, note TEXT,
            outcome TEXT, detail TEXT);
        CREATE INDEX alert_history_alert ON alert_history(alert_id, at);
        CREATE TABLE users (
            name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name)
            ON DELETE CASCADE, csrf TEXT NOT NULL, created_at REAL NOT NULL,
            expires_at REAL NOT NULL);
        """,
    ),
    (
        2,
        "actions log, login attempts",
        """
        CREATE TABLE actions (
            id INTEGER PRIMARY KEY, at REAL NOT NULL, user TEXT NOT NULL, site TEXT,
            unit TEXT, command TEXT NOT NULL, args TEXT, ok INTEGER, reply TEXT);
        CREATE TABLE login_attempts (
            id INTEGER PRIMARY KEY, user TEXT, client TEXT, at REAL NOT NULL, ok INTEGER);
        CREATE INDEX login_attempts_user ON login_attempts(user, at);
        """,
    ),
    (
        3,
        "event indexes in id order per unit, type and zone (newest-first lists without a sort)",
        """
        DROP INDEX events_unit;
        DROP INDEX events_zone;
        CREATE INDEX events_unit_id ON events(unit);
        CREATE INDEX events_type_id ON events(type);
        CREATE INDEX events_zone_id ON events(zone);
        CREATE INDEX alerts_unit ON alerts(unit);
        """,
    ),
    (
        4,
        "cases, case items, clip references, webhook outbox (tools/hub/serve/cases.py)",
        """
        CREATE TABLE cases (
            id INTEGER PRIMARY KEY, site TEXT NOT NULL, state TEXT NOT NULL,
            opened_at REAL NOT NULL, updated_at REAL NOT NULL, closed_at REAL,
            title TEXT, zones TEXT NOT NULL, units TEXT NOT NULL, tracks TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1);
        CREATE INDEX cases_active ON cases(site, state, updated_at);
        CREATE TABLE case_items (
            id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL REFERENCES cases(id),
            at REAL NOT NULL, kind TEXT NOT NULL, event_row INTEGER, alert_id INTEGER, unit TEXT);
        CREATE INDEX case_items_case ON case_items(case_id, id);
        CREATE INDEX case_items_alert ON case_items(alert_id);
        CREATE TABLE case_clips (
            case_id INTEGER NOT NULL REFERENCES cases(id), unit TEXT NOT NULL,
            incident_id TEXT NOT NULL, sha256 TEXT, PRIMARY KEY (case_id, unit, incident_id));
        CREATE TABLE webhook_outbox (
            id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL, change TEXT NOT NULL,
            body TEXT NOT NULL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_at REAL NOT NULL, sent_at REAL, last_error TEXT);
        CREATE INDEX webhook_pending ON webhook_outbox(sent_at, id);
        """,
    ),
]
LATEST = MIGRATIONS[-1][0]


class DBError(RuntimeError):
    """The database cannot be used: corrupt, from a newer hub, locked, full; says which file."""


def explain_error(path: Path, e: sqlite3.Error) -> str:
    """One line for an SQLite error that names the file and what to do."""
    text = str(e)
    if "locked" in text or "busy" in text:
        return f"{path}: database is locked by another process ({text}); retrying"
    if "full" in text:
        return f"{path}: disk or database is full ({text}); free space, nothing stored is lost"
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return (
            f"{path}: the database is corrupt ({text}); keep the file for recovery "
            "(sqlite3 .recover) and start the hub with another --db"
        )
    return f"{path}: {text}"


class HubDB:
    """Opens (creating or migrating) the hub database; ``write()`` is the one writer's
    transaction, ``read()`` a per-thread reader (WAL lets readers run beside the writer)."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0, upto: int = LATEST):
        """``upto`` stops the migrations at an older schema (to test upgrades)."""
        self.path = Path(path).expanduser()
        self.busy_ms = int(busy_timeout_s * 1000)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._wlock = threading.Lock()
        try:
            self._w = self._connect()
            self._w.execute("PRAGMA journal_mode=WAL")
            self.migrate(upto)
            self._w.execute("PRAGMA optimize=0x10002")  # fresh planner statistics, cheap
        except sqlite3.DatabaseError as e:
            raise DBError(explain_error(self.path, e)) from None

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=self.busy_ms / 1000, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.execute(f"PRAGMA busy_timeout={self.busy_ms}")
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a crash of the hub
        return con

    def version(self, con: sqlite3.Connection | None = None) -> int:
        con = con or self._w
        has = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='migrations'"
        ).fetchone()
        if not has:
            return 0
        return con.execute("SELECT COALESCE(MAX(version), 0) FROM migrations").fetchone()[0]

    def migrate(self, upto: int = LATEST) -> int:
        """Apply the missing steps (each in its own transaction); returns the version."""
        con = self._w
        con.execute(
            "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, name TEXT, "
            "applied_at REAL)"
        )
        have = self.version()
        if have > LATEST:
            raise DBError(
                f"{self.path}: schema version {have} is newer than this hub's {LATEST}; "
                "upgrade vigil-hub (the database is left as it is)"
            )
        for version, name, sql in MIGRATIONS:
            if have < version <= upto:
                with self._wlock:
                    con.execute("BEGIN IMMEDIATE")
                    try:
                        for stmt in filter(str.strip, sql.split(";")):
                            con.execute(stmt)
                        con.execute(
                            "INSERT INTO migrations VALUES (?, ?, ?)", (version, name, time.time())
                        )
                        con.execute("COMMIT")
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
        return self.version()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (serialised across threads); rolled back on error."""
        with self._wlock:
            self._w.execute("BEGIN IMMEDIATE")
            try:
                yield self._w
            except BaseException:
                self._w.execute("ROLLBACK")
                raise
            self._w.execute("COMMIT")

    def read(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._connect()
        return con

    def check(self) -> list[str]:
        """``PRAGMA quick_check`` problems (empty when the file is sound)."""
        rows = self.read().execute("PRAGMA quick_check").fetchall()
        return [r[0] for r in rows if r[0] != "ok"]

    def close(self) -> None:
        self._w.close()
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()


def dumps(value: Any) -> str:
    """JSON for a column (CBOR bytes and other oddities as their repr)."""
    return json.dumps(value, default=_plain, separators=(",", ":"))


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    return repr(v)
