"""On-disk outbox of events (SQLite, WAL): an event is stored before it is published and
leaves only when the broker acknowledged it, so neither a network blink nor a crash loses it.

Durability: with ``sync="full"`` every event is fsynced before ``put`` returns (power-safe,
but an fsync per event stalls the caller: milliseconds, far more on a busy SD card). The
default ``"interval"`` commits without fsync (a crash of the process loses nothing, SQLite
WAL) and a background thread fsyncs the WAL within ``sync_interval_s`` of new events, so a
power cut loses at most that last interval and the frame loop never waits on the disk.

Bounded: when full, the oldest event of the lowest severity below ALERT is dropped and
counted; alerts are never dropped (the outbox may then exceed its bound). The same file keeps
the link's small persistent state (session number, command counter, drop counts).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from firmware.events.records import Severity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    severity INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_severity ON outbox (severity, rowid);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Outbox:
    """Thread-safe FIFO of encoded events in one SQLite file (``<data_dir>/link-outbox.sqlite``)."""

    def __init__(
        self,
        path: Path,
        max_events: int = 100_000,
        sync: str = "interval",
        sync_interval_s: float = 1.0,
    ):
        if sync not in ("full", "interval"):
            raise ValueError(f"outbox sync must be 'full' or 'interval', not {sync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self._depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._flusher: threading.Thread | None = None
        self.sync_interval_s = sync_interval_s
        if sync == "interval":
            self._flusher = threading.Thread(
                target=self._flush_loop, name="vigil-outbox-sync", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closing.is_set():
            self._dirty.wait()
            self._closing.wait(self.sync_interval_s)  # gather a second's events per fsync
            self._dirty.clear()
            self.fsync()

    def fsync(self) -> None:
        """Make every committed event durable (fsync of the WAL file, off the caller's path)."""
        for suffix in ("-wal", ""):
            try:
                fd = os.open(f"{self.path}{suffix}", os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- events ---------------------------------------------------------------------------

    def put(self, msg_id: str, severity: int, payload: bytes) -> list[int]:
        """Store one event durably; returns the severities of events dropped to make room."""
        dropped: list[int] = []
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                while self._depth >= self.max_events:
                    row = cur.execute(
                        "SELECT rowid, severity FROM outbox WHERE severity < ? "
                        "ORDER BY severity, rowid LIMIT 1",
                        (int(Severity.ALERT),),
                    ).fetchone()
                    if row is None:
                        break  # only alerts left: they are never dropped
                    cur.execute("DELETE FROM outbox WHERE rowid = ?", (row[0],))
                    self._depth -= 1
                    dropped.append(int(row[1]))
                    self._bump(cur, f"dropped.{Severity(row[1]).name.lower()}", 1)
                cur.execute(
                    "INSERT OR IGNORE INTO outbox (msg_id, severity, payload) VALUES (?, ?, ?)",
                    (msg_id, int(severity), payload),
                )
                self._depth += cur.rowcount
                cur.execute("COMMIT")
                self._dirty.set()
            except BaseException:
                cur.execute("ROLLBACK")
                self._depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                raise
        return dropped

    def after(self, rowid: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Up to ``limit`` events after ``rowid``, oldest first: (rowid, msg_id, payload)."""
        with self._lock:
            return self._db.execute(
                "SELECT rowid, msg_id, payload FROM outbox WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (rowid, limit),
            ).fetchall()

    def remove(self, rowids: list[int]) -> None:
        """Forget acknowledged events (one transaction for the whole batch)."""
        if not rowids:
            return
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            cur.executemany("DELETE FROM outbox WHERE rowid = ?", [(r,) for r in rowids])
            removed = cur.rowcount
            cur.execute("COMMIT")
            self._depth -= max(removed, 0)

    def depth(self) -> int:
        return self._depth

    def dropped(self) -> dict[str, int]:
        """Events dropped because the outbox was full, by severity name (persistent)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM state WHERE key LIKE 'dropped.%'"
            ).fetchall()
        return {k.removeprefix("dropped."): v for k, v in rows}

    # -- small persistent state --------------------------------------------------------------

    def _bump(self, cur: sqlite3.Cursor, key: str, by: int) -> None:
        cur.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
            (key, by),
        )

    def next_session(self) -> int:
        """A new session number (persists across restarts, like Sparkplug's bdSeq)."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            self._bump(cur, "session", 1)
            n = cur.execute("SELECT value FROM state WHERE key = 'session'").fetchone()[0]
            cur.execute("COMMIT")
            return int(n)

    def get(self, key: str, default: int = 0) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def advance(self, key: str, value: int) -> bool:
        """Atomically set ``key`` to ``value`` if it is greater than the stored one (the
        command counter: a replayed or older counter returns False)."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            row = cur.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            if row is not None and int(row[0]) >= value:
                cur.execute("ROLLBACK")
                return False
            cur.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
            cur.execute("COMMIT")
            return True

    def close(self) -> None:
        self._closing.set()
        self._dirty.set()
        if self._flusher is not None:
            self._flusher.join(5)
        with self._lock:
            self._db.close()
        self.fsync()
