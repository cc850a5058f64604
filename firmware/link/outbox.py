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

Never stops a unit from starting: a corrupt or truncated file is moved aside (kept as
``link-outbox.sqlite.corrupt-<time>`` for inspection) and a fresh one made; where no file can
be made (a full or read-only disk) the outbox lives in memory. ``problem`` then says which
(``outbox_corrupt``, ``disk_full``, ``storage_failed``) for the unit's health event and alert.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
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

log = logging.getLogger(__name__)

# Below this much free space a data folder counts as full (SQLite needs room for its WAL).
FULL_BELOW_BYTES = 256 * 1024


def storage_problem(path: Path) -> str:
    """``disk_full`` when the folder holding ``path`` has (almost) no space left, else
    ``storage_failed`` (read-only, broken): the alert reason for a failed write."""
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return "storage_failed"
    return "disk_full" if free < FULL_BELOW_BYTES else "storage_failed"


def _connect(path: Path | str, sync: str) -> tuple[sqlite3.Connection, int]:
    """An open, checked outbox database and its depth; raises sqlite3.DatabaseError."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check}")
        db.executescript(_SCHEMA)
        return db, db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    except BaseException:
        db.close()
        raise


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
        self.max_events = max_events
        self._lock = threading.Lock()
        self.problem: str | None = None  # why the outbox is not the healthy file it should be
        self.detail = ""
        self.moved_to: Path | None = None
        self.in_memory = False
        self._db, self._depth = self._open(sync)
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._flusher: threading.Thread | None = None
        self.sync_interval_s = sync_interval_s
        if sync == "interval":
            self._flusher = threading.Thread(
                target=self._flush_loop, name="vigil-outbox-sync", daemon=True
            )
            self._flusher.start()

    def _open(self, sync: str) -> tuple[sqlite3.Connection, int]:
        """The file if healthy; else a fresh file with the old one moved aside; else memory."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return _connect(self.path, sync)
        except (sqlite3.DatabaseError, OSError) as e:
            first = e
        corrupt = self.path.exists() and isinstance(first, sqlite3.DatabaseError)
        corrupt = corrupt and storage_problem(self.path) != "disk_full"
        if corrupt:
            self.moved_to = self.path.with_name(
                f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
            )
            try:
                for suffix in ("-wal", "-shm", ""):
                    old = Path(f"{self.path}{suffix}")
                    if old.exists():
                        old.rename(f"{self.moved_to}{suffix}")
                self.problem = "outbox_corrupt"
                self.detail = f"outbox {self.path} unreadable ({first}): moved to {self.moved_to}"
                log.error("link: %s; starting a new one", self.detail)
                return _connect(self.path, sync)
            except (sqlite3.DatabaseError, OSError) as e:
                first = e
        self.problem = storage_problem(self.path)
        self.detail = (
            f"outbox {self.path} cannot be written ({first}): events are kept in memory only"
        )
        log.error("link: %s", self.detail)
        self.in_memory = True
        return _connect(":memory:", "interval")

    def _flush_loop(self) -> None:
        while not self._closing.is_set():
            self._dirty.wait()
            self._closing.wait(self.sync_interval_s)  # gather a second's events per fsync
            self._dirty.clear()
            self.fsync()

    def fsync(self) -> None:
        """Make every committed event durable (fsync of the WAL file, off the caller's path)."""
        if self.in_memory:
            return
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

    def set_state(self, key: str, value: int) -> None:
        """Set ``key`` (a repair: the command counter brought back to the clock)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        self._closing.set()
        self._dirty.set()
        if self._flusher is not None:
            self._flusher.join(5)
        with self._lock:
            self._db.close()
        self.fsync()
