"""The hub database: migrations from an older schema, a newer or corrupt file refused, a locked
or full database holding messages (unacknowledged) until it can write again."""

from __future__ import annotations

import os
import sqlite3
import time

import cbor2
import pytest

from tests.support.hub import run_hub
from tools.hub.serve.alerts import AlertStage
from tools.hub.serve.db import LATEST, DBError, HubDB
from tools.hub.serve.ingest import Ingest, Message, Store

pytest.importorskip("argon2")


def event(seq: int, severity: int = 2, size: int = 0) -> bytes:
    return cbor2.dumps(
        dict(
            v=1,
            msg_id=os.urandom(16).hex(),
            session=3,
            seq=seq,
            site="s",
            unit="u",
            event_id=f"e{seq}",
            type="running",
            rule="running",
            phase="instant",
            severity=severity,
            severity_name="warn",
            start_time=1.0,
            start_frame=1,
            time=1.0,
            frame=1,
            end_time=None,
            end_frame=None,
            zone=None,
            track_ids=[],
            explain={"speed_mps": 3.1, "pad": "x" * size},
            incident_id=None,
        )  # fmt: skip
    )


def msg(payload: bytes, mid: int | None = None) -> Message:
    return Message("vigil/s/u/events", "s", "u", "events", payload, time.time(), mid=mid, qos=1)


def ingest(db: HubDB, **kw) -> tuple[Ingest, list[int]]:
    acked: list[int] = []
    from tools.hub.contract import Validator

    ing = Ingest(db, [Store(), AlertStage()], validator=Validator(), **kw)
    ing.ack = lambda m: acked.append(m.mid)
    return ing, acked


def test_an_older_database_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "hub.sqlite"
    old = HubDB(path, upto=1)  # what a hub of schema version 1 made
    assert old.version() == 1
    ing, _ = ingest(old)
    ing.process([msg(event(0))])
    old.close()
    db = HubDB(path)
    assert db.version() == LATEST
    con = db.read()
    assert con.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    assert con.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 1
    assert con.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 0  # the new table
    assert [r[0] for r in con.execute("SELECT version FROM migrations")] == list(
        range(1, LATEST + 1)
    )


def test_a_newer_or_corrupt_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "hub.sqlite"
    HubDB(path).close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO migrations VALUES (99, 'from the future', 0)")
    con.commit()
    con.close()
    with pytest.raises(DBError, match="newer than this hub"):
        HubDB(path)
    bad = tmp_path / "bad.sqlite"
    junk = b"this is not a database at all" * 200
    bad.write_bytes(junk)
    r = run_hub(["serve", "--db", str(bad), "--listen", "127.0.0.1:1"])
    assert r.returncode == 2 and "corrupt" in r.stderr and str(bad) in r.stderr
    assert bad.read_bytes() == junk  # untouched, for recovery
    r = run_hub(["user", "list", "--db", str(bad)])
    assert r.returncode == 2 and "corrupt" in r.stderr


def test_a_locked_database_holds_messages_until_it_is_free(tmp_path):
    db = HubDB(tmp_path / "hub.sqlite", busy_timeout_s=0.2)
    ing, acked = ingest(db, retry_s=0.1)
    ing.start()
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    for i in range(5):
        ing.put(msg(event(i), mid=i + 1))
    deadline = time.monotonic() + 10
    while ing.stats.db_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "locked" in ing.stats.db_error and str(db.path) in ing.stats.db_error
    assert acked == []  # nothing acknowledged: the broker still holds them
    assert db.read().execute("SELECT COUNT(*) FROM units").fetchone()[0] == 0  # reads work
    other.execute("ROLLBACK")
    other.close()
    assert ing.idle.wait(10)
    assert acked == [1, 2, 3, 4, 5] and ing.stats.db_error is None
    assert db.read().execute("SELECT COUNT(*) FROM events").fetchone()[0] == 5
    ing.stop()


def test_a_full_database_keeps_what_it_has_and_resumes(tmp_path):
    db = HubDB(tmp_path / "hub.sqlite")
    ing, acked = ingest(db, retry_s=0.1)
    ing.process([msg(event(0), mid=1)])
    pages = db._w.execute("PRAGMA page_count").fetchone()[0]
    db._w.execute(f"PRAGMA max_page_count={pages + 2}")  # the disk fills up
    ing.start()
    for i in range(1, 40):
        ing.put(msg(event(i, size=2000), mid=i + 1))
    deadline = time.monotonic() + 10
    while ing.stats.db_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "full" in ing.stats.db_error
    stored = db.read().execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert stored >= 1 and acked == list(range(1, stored + 1))  # acked = committed
    db._w.execute("PRAGMA max_page_count=1073741823")  # space freed
    assert ing.idle.wait(10)
    assert db.read().execute("SELECT COUNT(*) FROM events").fetchone()[0] == 40
    assert acked == list(range(1, 41)) and db.check() == []
    ing.stop()


def test_bad_serve_options_are_refused_with_a_message(tmp_path):
    store = tmp_path / "store.toml"
    store.write_text('[alerts]\nmin_severity = "loud"\n')
    r = run_hub(["serve", "--store", str(store), "--db", str(tmp_path / "h.sqlite")])
    assert r.returncode == 2 and "alerts.min_severity" in r.stderr and str(store) in r.stderr
    r = run_hub(["serve", "--listen", "nowhere", "--db", str(tmp_path / "h.sqlite")])
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = run_hub(["serve", "--tls-cert", str(store), "--db", str(tmp_path / "h.sqlite")])
    assert r.returncode == 2 and "--tls-key" in r.stderr
    r = run_hub(["serve", "--key", str(tmp_path / "none.pem"), "--db", str(tmp_path / "h.sqlite")])
    assert r.returncode == 2 and "none.pem" in r.stderr
