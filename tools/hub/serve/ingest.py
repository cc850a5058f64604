"""Ingest: MQTT -> decode and validate -> store (in one transaction per batch) -> consumers.

Plain ``Message`` records pass between the stages. Stages that write the database run in
the writer's transaction (``store``, then the alert workflow); consumers (the live stream,
fusion, the Home Assistant bridge, ...) get every message once it is committed, through
``Ingest.subscribe``. MQTT messages are acknowledged (QoS 1 PUBACK) only after their batch
is committed, so with the broker's persistent session nothing received is lost when the hub
stops, crashes or cannot write.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import cbor2

from tools.hub.serve.db import HubDB, dumps, explain_error

log = logging.getLogger("vigil-hub.ingest")

MAX_PAYLOAD = 256 * 1024  # larger than any message of the contract; refused unread


@dataclass(slots=True)
class Message:
    """One MQTT message as ingest saw it, annotated by the stages."""

    topic: str
    site: str
    unit: str
    kind: str  # status, birth, events, metrics, reply, config/state (cmd/* are the hub's own)
    payload: bytes
    received_at: float
    retained: bool = False
    mid: int | None = None  # MQTT message id to acknowledge (QoS 1), None when nothing to ack
    qos: int = 0
    body: Any = None  # decoded CBOR
    problems: list[str] = field(default_factory=list)  # contract violations: counted, not stored
    duplicate: bool = False  # an event whose msg_id was stored before
    gap: int = 0  # events missing before this one in its (unit, session)
    row: int | None = None  # events.id once stored
    alert: dict | None = None  # the alert this message opened or changed (set by alerts)

    @property
    def valid(self) -> bool:
        return not self.problems


class Stage(Protocol):
    """A step inside the writer's transaction. It may also have ``begin()`` (called before
    each attempt at a batch) and ``flush(con)`` (after the batch's last message, before the
    commit) to keep per-batch state."""

    def __call__(self, con: sqlite3.Connection, msg: Message) -> None: ...


Consumer = Callable[[Message], None]


def decode(msg: Message, validator: Any | None) -> Message:
    """Decode the CBOR and check it against the contract (problems listed, never raised)."""
    if len(msg.payload) > MAX_PAYLOAD:
        msg.problems = [f"payload of {len(msg.payload)} bytes is over {MAX_PAYLOAD}"]
        return msg
    if msg.kind.startswith("cmd/") or msg.kind == "config/set":
        return msg  # the hub's own commands echo back on the wildcard; not unit data
    if not msg.payload:
        msg.problems = ["empty payload (a cleared retained message)"]
        return msg
    try:
        msg.body = cbor2.loads(msg.payload)
    except Exception as e:
        msg.problems = [f"not CBOR: {e}"]
        return msg
    if validator is not None:
        msg.problems = validator.check(msg.kind, msg.payload)
    elif not isinstance(msg.body, dict):
        msg.problems = ["not a CBOR map"]
    if not msg.problems and isinstance(msg.body, dict):
        for key in ("site", "unit"):  # an event must name the topic's own unit
            if key in msg.body and msg.body[key] != getattr(msg, key):
                msg.problems.append(
                    f"{key} {msg.body[key]!r} does not match the topic's {getattr(msg, key)!r}"
                )
    return msg


# Unit state columns per message kind, and the values from the message's body (read only for
# that kind: a birth has no "state").
_UNIT_COLUMNS: dict[str, tuple[str, Callable[[dict], tuple]]] = {
    "status": (
        "state=?, session=?, status_time=?, reasons=?",
        lambda b: (b["state"], b["session"], b["time"], dumps(b.get("reasons", []))),
    ),
    "birth": ("birth=?, session=?", lambda b: (dumps(b), b["session"])),
    "metrics": ("metrics=?", lambda b: (dumps(b),)),
    "config/state": ("config=?", lambda b: (b["text"],)),
}


class Store:
    """Stores events (de-duplicated by msg_id, gaps flagged per unit and session), unit state
    and invalid messages. Last-seen times and sequence numbers are written once per batch."""

    def __init__(self) -> None:
        self.begin()

    def begin(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._seqs: dict[tuple[str, str, int], int | None] = {}
        self._dirty: set[tuple[str, str, int]] = set()

    def __call__(self, con: sqlite3.Connection, msg: Message) -> None:
        if msg.kind.startswith("cmd/") or msg.kind == "config/set":
            return
        if not msg.valid:
            con.execute(
                "INSERT INTO invalid (topic, problems, size, received_at) VALUES (?, ?, ?, ?)",
                (msg.topic, dumps(msg.problems), len(msg.payload), msg.received_at),
            )
            return
        if msg.kind == "store/tracks":
            return  # the hub's own fused positions, 5 times a second: nothing to keep
        b, key = msg.body, (msg.site, msg.unit)
        if msg.unit != "store":
            self._seen[key] = max(self._seen.get(key, 0.0), msg.received_at)
        if msg.kind == "events":
            self._event(con, msg, b)
            return
        column, values = _UNIT_COLUMNS.get(msg.kind, (None, None))
        if column:
            values = values(b)
        if column:
            con.execute("INSERT OR IGNORE INTO units (site, unit) VALUES (?, ?)", key)
            con.execute(f"UPDATE units SET {column} WHERE site=? AND unit=?", (*values, *key))

    def _event(self, con: sqlite3.Connection, msg: Message, b: dict) -> None:
        cur = con.execute(
            "INSERT OR IGNORE INTO events (msg_id, site, unit, session, seq, event_id, type, "
            "rule, phase, severity, zone, time, received_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                b["msg_id"], msg.site, msg.unit, b["session"], b["seq"], b["event_id"],
                b["type"], b["rule"], b["phase"], b["severity"], b.get("zone"), b["time"],
                msg.received_at, dumps(b),
            ),
        )  # fmt: skip
        if cur.rowcount == 0:
            msg.duplicate = True
            return
        msg.row = cur.lastrowid
        key = (msg.site, msg.unit, b["session"])
        if key not in self._seqs:
            row = con.execute(
                "SELECT last_seq FROM seqs WHERE site=? AND unit=? AND session=?", key
            ).fetchone()
            self._seqs[key] = None if row is None else row[0]
        last, seq = self._seqs[key], b["seq"]
        missing = seq if last is None else max(0, seq - last - 1)  # seq counts from 0
        if last is None or seq > last:
            self._seqs[key] = seq
            self._dirty.add(key)
        if missing:
            msg.gap = missing
            con.execute(
                "INSERT INTO gaps (site, unit, session, after_seq, missing, detected_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (*key, seq - missing - 1, missing, msg.received_at),
            )

    def flush(self, con: sqlite3.Connection) -> None:
        con.executemany(
            "INSERT INTO units (site, unit, last_seen) VALUES (?, ?, ?) ON CONFLICT DO UPDATE "
            "SET last_seen = MAX(COALESCE(last_seen, 0), excluded.last_seen)",
            [(*k, t) for k, t in self._seen.items()],
        )
        con.executemany(
            "INSERT INTO seqs VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET last_seq=excluded.last_seq",
            [(*k, self._seqs[k]) for k in self._dirty],
        )


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    gaps: int = 0
    db_error: str | None = None  # the last write failure while it lasts
    db_error_since: float | None = None


class Ingest:
    """The writer: batches of messages from a queue, each batch in one transaction through the
    stages, then acknowledged and handed to the consumers."""

    def __init__(
        self,
        db: HubDB,
        stages: list[Stage],
        *,
        validator: Any | None = None,
        ack: Callable[[Message], None] | None = None,
        max_batch: int = 500,
        retry_s: float = 1.0,
    ):
        self.db, self.stages, self.validator = db, stages, validator
        self.ack = ack
        self.consumers: list[tuple[Consumer, frozenset[str] | None]] = []
        self.max_batch, self.retry_s = max_batch, retry_s
        self.stats = IngestStats()
        self.queue: queue.Queue[Message | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.idle = threading.Event()

    def subscribe(self, consumer: Consumer, kinds: set[str] | None = None) -> None:
        """Call ``consumer(msg)`` for every valid, stored, non-duplicate message (of ``kinds``)."""
        self.consumers.append((consumer, frozenset(kinds) if kinds else None))

    def put(self, msg: Message) -> None:
        self.stats.received += 1
        self.idle.clear()
        self.queue.put(msg)

    def start(self) -> Ingest:
        self._thread = threading.Thread(target=self._run, name="hub-ingest", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.process(batch)
                    return
                batch.append(nxt)
            self.process(batch)
            if self.queue.empty():
                self.idle.set()

    def process(self, batch: list[Message]) -> None:
        """Decode, store (retrying while the database refuses), acknowledge, hand on."""
        for msg in batch:
            if msg.body is None and not msg.problems:
                decode(msg, self.validator)
        while True:
            try:
                for stage in self.stages:
                    getattr(stage, "begin", lambda: None)()
                with self.db.write() as con:
                    for msg in batch:
                        msg.duplicate, msg.gap, msg.row, msg.alert = False, 0, None, None
                        for stage in self.stages:
                            stage(con, msg)
                    for stage in self.stages:
                        getattr(stage, "flush", lambda con: None)(con)
                break
            except sqlite3.Error as e:
                text = explain_error(self.db.path, e)
                if self.stats.db_error != text:
                    log.error("ingest: %s; %d message(s) held, not acknowledged", text, len(batch))
                self.stats.db_error = text
                self.stats.db_error_since = self.stats.db_error_since or time.time()
                time.sleep(self.retry_s)
        if self.stats.db_error:
            log.warning("ingest: database writable again (%s)", self.db.path)
        self.stats.db_error = self.stats.db_error_since = None
        for msg in batch:
            self._count(msg)
            if self.ack is not None and msg.mid is not None:
                self.ack(msg)
        for msg in batch:
            if not msg.valid or msg.duplicate:
                continue
            for consumer, kinds in self.consumers:
                if kinds is None or msg.kind in kinds:
                    try:
                        consumer(msg)
                    except Exception:  # one broken consumer never stops ingest
                        log.exception("ingest: consumer %r failed on %s", consumer, msg.topic)

    def _count(self, msg: Message) -> None:
        if not msg.valid:
            self.stats.invalid += 1
            log.warning("invalid message on %s: %s", msg.topic, "; ".join(msg.problems))
        elif msg.duplicate:
            self.stats.duplicates += 1
        elif msg.kind == "events":
            self.stats.stored += 1
            if msg.gap:
                self.stats.gaps += 1
                log.warning(
                    "gap: %d event(s) of %s/%s session %s missing before seq %s",
                    msg.gap, msg.site, msg.unit, msg.body["session"], msg.body["seq"],
                )  # fmt: skip
