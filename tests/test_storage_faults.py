"""Start-up never depends on a healthy data folder: a corrupt or truncated outbox is moved
aside (kept) with a health event and an alert; a 100% full data folder (a real tmpfs) is a
``disk_full`` alert while detection, deterrents and the link keep working. Real Mosquitto,
real SQLite, the real unit on the demo clip."""

from __future__ import annotations

import json
import sqlite3

from firmware.config import load
from firmware.events.records import Severity
from firmware.link.outbox import Outbox
from firmware.unit import RunOptions, apply_overrides, build_unit
from tests.support.smallfs import small_fs
from tests.test_run import demo_site
from tools.hub.client import HubClient


def run_unit(tmp_path, broker, mock_pins, data_dir, frames: int = 150):
    site = demo_site(tmp_path, threshold_s=1.0)
    site.write_text(site.read_text().replace('mqtt = ""', f'mqtt = "{broker.url}"'))
    events = tmp_path / "events.jsonl"
    opts = RunOptions(
        data_dir=str(data_dir),
        events_out=str(events),
        fast=True,
        max_frames=frames,
        pin_factory=mock_pins,
        watchdog=False,
    )
    loaded = apply_overrides(load(site), opts)
    hub = HubClient(broker.url, site="demo-store").connect()
    try:
        unit = build_unit(loaded, opts)
        result = unit.run()
        hub.wait_for(lambda rx: hub.events("demo-unit"), timeout=20)
        statuses = [r.message for r in hub.of("status", "demo-unit")]
        got = hub.events("demo-unit")
    finally:
        hub.close()
    recs = [json.loads(x) for x in events.read_text().splitlines()]
    return unit, result, recs, statuses, got


def health(recs, code):
    return [r for r in recs if r["type"] == "health" and r["rule"] == code]


def a_real_outbox(path):
    box = Outbox(path, sync="full")
    for i in range(200):
        box.put(f"m{i}", 2, b"x" * 300)
    box.close()


def test_truncated_outbox_is_moved_aside_and_the_unit_runs(tmp_path, broker, mock_pins):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "link-outbox.sqlite"
    a_real_outbox(db)
    raw = db.read_bytes()
    db.write_bytes(raw[: len(raw) // 3])  # a power cut mid-write, a bad SD card
    kept = db.read_bytes()
    unit, result, recs, statuses, got = run_unit(tmp_path, broker, mock_pins, data)
    assert result.frames == 150 and result.events["loitering"] >= 1  # detection went on
    aside = list(data.glob("link-outbox.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == kept  # kept for inspection, unchanged
    assert [h["severity"] for h in health(recs, "outbox_corrupt")] == [int(Severity.ALERT)]
    assert any("outbox_corrupt" in s.get("reasons", []) for s in statuses if s)
    assert any(e["type"] == "loitering" for e in got)  # the link delivers from the new outbox
    sqlite3.connect(db).execute("PRAGMA quick_check").fetchone()  # the new file is sound


def test_garbage_outbox_is_moved_aside(tmp_path, broker, mock_pins):
    data = tmp_path / "data"
    data.mkdir()
    (data / "link-outbox.sqlite").write_bytes(b"not a database at all " * 100)
    unit, result, recs, statuses, got = run_unit(tmp_path, broker, mock_pins, data, frames=40)
    assert result.frames == 40
    assert len(list(data.glob("link-outbox.sqlite.corrupt-*"))) == 1
    assert health(recs, "outbox_corrupt")


def test_full_data_folder_is_a_disk_full_alert_and_the_unit_works(tmp_path, broker, mock_pins):
    with small_fs(tmp_path / "data", size_kb=256, fill=True) as data:
        unit, result, recs, statuses, got = run_unit(tmp_path, broker, mock_pins, data)
    assert result.frames == 150 and result.events["loitering"] >= 1
    assert unit.link.outbox.in_memory
    assert "cannot be written" in health(recs, "disk_full")[0]["explain"]["detail"]
    assert any("disk_full" in s.get("reasons", []) for s in statuses if s)
    assert any(e["type"] == "loitering" for e in got)  # events still reach the hub
    assert any(e["type"] == "deterrent" for e in got)  # and the light still switched
