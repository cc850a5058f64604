"""The audit log shows its own end cut off: truncation, emptying and deletion are reported
(the head kept apart in audit.head); an export that cannot be audited is refused and leaves
nothing; an export to a destination that fills up (a real full tmpfs) leaves nothing under
its final name."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from firmware.cli import main as vigil
from firmware.recording import IncidentError, IncidentStore, generate_key_file, load_key
from tests.support.smallfs import small_fs
from tests.test_recording_store import add_incident


@pytest.fixture
def key(tmp_path: Path) -> bytes:
    generate_key_file(tmp_path / "rec.key")
    return load_key(tmp_path / "rec.key")


IDS = [f"20260102T00000{i}Z-i{i}" for i in range(4)]


def store_with_log(tmp_path: Path, key: bytes) -> IncidentStore:
    store = IncidentStore(tmp_path / "data")
    for iid in IDS:
        add_incident(store, key, iid, time.time(), 50)
    store.set_hold(IDS[0], True, "dpo", "case 1")
    assert store.verify_audit() == []
    return store


def audit_verify(tmp_path: Path, capsys) -> tuple[int, str]:
    rc = vigil(["incident", "--data-dir", str(tmp_path / "data"), "audit", "--verify"])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_removing_the_last_entries_is_reported(tmp_path, key, capsys):
    store = store_with_log(tmp_path, key)
    lines = store.audit.path.read_text().splitlines(keepends=True)
    store.audit.path.write_text("".join(lines[:-2]))  # a clean cut: the chain itself is fine
    rc, said = audit_verify(tmp_path, capsys)
    assert rc == 1 and "truncated: 3 entries, the head records 5" in said and "intact" not in said


def test_emptying_the_log_is_reported(tmp_path, key, capsys):
    store = store_with_log(tmp_path, key)
    store.audit.path.write_text("")
    rc, said = audit_verify(tmp_path, capsys)
    assert rc == 1 and "log emptied: the head records 5 entries" in said


def test_deleting_the_log_is_reported(tmp_path, key, capsys):
    store = store_with_log(tmp_path, key)
    store.audit.path.unlink()
    rc, said = audit_verify(tmp_path, capsys)
    assert rc == 1 and "log deleted" in said


def test_deleting_log_and_head_is_reported_while_incidents_remain(tmp_path, key, capsys):
    store = store_with_log(tmp_path, key)
    store.audit.path.unlink()
    store.audit.head_path.unlink()
    rc, said = audit_verify(tmp_path, capsys)
    assert rc == 1 and "4 stored incident(s) have no 'record' entry" in said


def test_cutting_the_log_and_removing_the_head_is_reported(tmp_path, key, capsys):
    store = store_with_log(tmp_path, key)
    lines = store.audit.path.read_text().splitlines(keepends=True)
    store.audit.path.write_text("".join(lines[:-1]))
    store.audit.head_path.unlink()
    rc, said = audit_verify(tmp_path, capsys)
    assert rc == 1 and "head audit.head missing" in said


def test_export_refused_when_the_audit_log_cannot_be_written(tmp_path, key):
    store = store_with_log(tmp_path, key)
    before = store.audit.path.read_bytes()
    data = tmp_path / "data"
    os.chmod(store.audit.path, 0o444)
    os.chmod(data, 0o555)  # a read-only data folder
    try:
        if os.access(store.audit.path, os.W_OK):  # root ignores modes: make the log a folder
            os.chmod(data, 0o755)
            store.audit.path.unlink()
            store.audit.path.mkdir()
        out = tmp_path / "out" / "clip.mp4"
        with pytest.raises(IncidentError, match="export refused: the audit log"):
            store.export(IDS[1], key, out, "dpo", "SAR 3")
        assert not out.exists() and list((tmp_path / "out").iterdir()) == []
    finally:
        os.chmod(data, 0o755)
    if store.audit.path.is_dir():
        store.audit.path.rmdir()
        store.audit.path.write_bytes(before)
    os.chmod(store.audit.path, 0o644)
    assert store.audit.path.read_bytes() == before  # no entry for what did not happen


def test_export_to_a_destination_that_fills_up_leaves_nothing(tmp_path, key):
    store = IncidentStore(tmp_path / "data")
    add_incident(store, key, IDS[0], time.time(), 200_000)  # a 200 KB clip
    with small_fs(tmp_path / "usb", size_kb=64) as usb:
        out = usb / "clip.mp4"
        with pytest.raises(OSError):
            store.export(IDS[0], key, out, "dpo", "SAR 4")
        assert sorted(p.name for p in usb.iterdir()) == []  # no truncated clip, no temp file
    assert [e["action"] for e in store.audit.entries()] == ["record"]
