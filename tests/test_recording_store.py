"""Retention by age and quota, legal hold, audit log and the `vigil incident` command."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from firmware.cli import main as vigil
from firmware.recording import IncidentError, IncidentStore, generate_key_file, load_key
from firmware.recording.crypto import encrypt

DAY = 86400.0


def add_incident(
    store: IncidentStore, key: bytes, iid: str, created: float, size: int = 1000
) -> None:
    clip = encrypt(key, b"\0" * size, f"{iid}/clip")
    record = encrypt(key, json.dumps({"incident_id": iid}).encode(), f"{iid}/record")
    store.add(
        iid,
        clip,
        record,
        {"id": iid, "created": created, "event_types": ["loitering"], "hold": None},
    )


@pytest.fixture
def key(tmp_path: Path) -> bytes:
    generate_key_file(tmp_path / "rec.key")
    return load_key(tmp_path / "rec.key")


def actions(store: IncidentStore) -> list[tuple[str, str | None]]:
    return [(e["action"], e["incident"]) for e in store.audit.entries()]


def test_retention_by_age_skips_held(tmp_path: Path, key: bytes) -> None:
    store = IncidentStore(tmp_path, max_age_days=7, quota_mb=100)
    now = time.time()
    add_incident(store, key, "old", now - 10 * DAY)
    add_incident(store, key, "old-held", now - 20 * DAY)
    add_incident(store, key, "new", now - 1 * DAY)
    store.set_hold("old-held", True, "dpo", "case 42")
    assert store.enforce_retention(now, dry_run=True) == ["old"]
    assert len(store.list()) == 3
    assert store.enforce_retention(now) == ["old"]
    assert [i.id for i in store.list()] == ["old-held", "new"]
    assert ("delete", "old") in actions(store)
    store.set_hold("old-held", False, "dpo")
    assert store.enforce_retention(now) == ["old-held"]


def test_retention_by_quota_oldest_first(tmp_path: Path, key: bytes) -> None:
    size = 400_000
    store = IncidentStore(tmp_path, max_age_days=30, quota_mb=1.0)  # room for two
    now = time.time()
    for n in range(4):
        add_incident(store, key, f"i{n}", now - (10 - n) * 3600, size)
    store.set_hold("i0", True, "dpo", "police request")
    gone = store.enforce_retention(now)
    assert gone == ["i1", "i2"]  # i0 is oldest but held; then oldest first until under quota
    assert [i.id for i in store.list()] == ["i0", "i3"]
    deletes = [e for e in store.audit.entries() if e["action"] == "delete"]
    assert all("quota" in e["detail"]["reason"] for e in deletes)


def test_delete_refused_while_held(tmp_path: Path, key: bytes) -> None:
    store = IncidentStore(tmp_path)
    add_incident(store, key, "a", time.time())
    with pytest.raises(IncidentError, match="needs a reason"):
        store.set_hold("a", True, "dpo", "")
    store.set_hold("a", True, "dpo", "case 7")
    with pytest.raises(IncidentError, match="legal hold"):
        store.delete("a", "someone", "tidy")
    with pytest.raises(IncidentError, match="no incident"):
        store.delete("nope", "someone", "tidy")
    assert [i.id for i in store.list()] == ["a"]


def test_audit_log_chain_detects_edits(tmp_path: Path, key: bytes) -> None:
    store = IncidentStore(tmp_path)
    add_incident(store, key, "a", time.time())
    add_incident(store, key, "b", time.time())
    store.set_hold("a", True, "dpo", "case 1")
    assert store.audit.verify() == []
    assert actions(store) == [("record", "a"), ("record", "b"), ("hold", "a")]
    lines = store.audit.path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["actor"] = "nobody"
    store.audit.path.write_text("\n".join([lines[0], json.dumps(edited), lines[2]]) + "\n")
    assert any("edited" in p for p in store.audit.verify())
    store.audit.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert any("removed or reordered" in p for p in store.audit.verify())


def test_cli_list_export_hold_purge(
    tmp_path: Path, key: bytes, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    store = IncidentStore(data)
    add_incident(store, key, "20260101T000000Z-abc", time.time() - 40 * DAY, 10)
    add_incident(store, key, "20260102T000000Z-def", time.time(), 10)
    base = ["incident", "--data-dir", str(data)]
    assert vigil([*base, "list"]) == 0
    out = capsys.readouterr().out
    assert "20260101T000000Z-abc" in out and "loitering" in out

    target = tmp_path / "out" / "clip.mp4"
    keyf = str(tmp_path / "rec.key")
    rc = vigil(
        [
            *base,
            "export",
            "20260102T000000Z-def",
            "--key",
            keyf,
            "--out",
            str(target),
            "--by",
            "dpo",
            "--reason",
            "SAR 12",
        ]
    )
    assert rc == 0
    assert target.read_bytes() == b"\0" * 10
    assert (
        json.loads((tmp_path / "out" / "clip.record.json").read_text())["incident_id"]
        == "20260102T000000Z-def"
    )
    export = [e for e in store.audit.entries() if e["action"] == "export"]
    assert export and export[0]["actor"] == "dpo" and export[0]["detail"]["reason"] == "SAR 12"

    generate_key_file(tmp_path / "other.key")
    rc = vigil(
        [
            *base,
            "export",
            "20260102T000000Z-def",
            "--key",
            str(tmp_path / "other.key"),
            "--out",
            str(tmp_path / "x.mp4"),
            "--reason",
            "r",
        ]
    )
    assert rc == 1
    assert "wrong key" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()

    assert vigil([*base, "hold", "20260101T000000Z-abc", "--by", "dpo", "--reason", "case 9"]) == 0
    assert vigil([*base, "purge"]) == 0
    assert "deleted 0 incident(s)" in capsys.readouterr().out
    assert vigil([*base, "release", "20260101T000000Z-abc", "--by", "dpo"]) == 0
    assert vigil([*base, "purge"]) == 0
    assert "deleted 1 incident(s): 20260101T000000Z-abc" in capsys.readouterr().out
    assert vigil([*base, "audit", "--verify"]) == 0
    assert vigil([*base, "delete", "nope", "--reason", "x"]) == 1
    assert "no incident 'nope'" in capsys.readouterr().err
