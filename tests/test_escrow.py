"""Escrowed originals on real CAVIAR frames: sealed to the controller's key, unreadable by
the unit, opened only with the escrow private key, every reveal audited, own retention."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.cli import main as vigil
from firmware.events.records import Event, EventPhase, Severity
from firmware.paths import eval_data_dir
from firmware.privacy import Anonymiser, PrivacyConfig
from firmware.recording import IncidentRecorder, IncidentStore, RecordingConfig, generate_key_file
from firmware.recording.clip import decode_clip
from firmware.recording.config import EscrowConfig
from firmware.recording.escrow import (
    EscrowSealer,
    EscrowStore,
    generate_escrow_pair,
    load_private_key,
    load_public_key,
)

FRAMES = eval_data_dir() / "caviar" / "inria" / "frames" / "Rest_InChair"


@pytest.fixture(scope="module")
def originals() -> list[np.ndarray]:
    files = sorted(FRAMES.glob("*.jpg"))[:12]
    if not files:
        pytest.skip(f"CAVIAR frames not found under {eval_data_dir()}")
    return [cv2.imread(str(p)) for p in files]


@pytest.fixture()
def escrowed(tmp_path: Path, originals):
    """One incident recorded with escrow on: (data dir, incident id, private key path)."""
    key = tmp_path / "rec.key"
    generate_key_file(key)
    priv, pub = generate_escrow_pair(tmp_path / "controller.pem")
    data = tmp_path / "data"
    h, w = originals[0].shape[:2]
    rcfg = RecordingConfig(key_file=str(key), pre_event_s=0.2, post_event_s=60.0)
    rec = IncidentRecorder(rcfg, data, 25.0, (w, h))
    esc = EscrowSealer(EscrowConfig(enabled=True), data, load_public_key(pub), 25.0, 0.2, 120.0)
    anon = Anonymiser(PrivacyConfig())
    for i, img in enumerate(originals):
        rec.push(i, i / 25.0, anon.apply(img, None, None, inference_ok=False))
        if i == 2:
            rec.on_event(Event("fight", "fight", EventPhase.START, Severity.ALERT, i / 25, i, 0, 0))
        esc.push(i, i / 25.0, img, rec.open_incident)
    rec.close()
    esc.close()
    assert rec.recorded and esc.sealed == rec.recorded
    return data, rec.recorded[0], priv


def _reveal(data: Path, iid: str, key: Path, out: Path, capsys, reason: str = "police 42"):
    argv = ["incident", "--data-dir", str(data), "reveal", iid, "--escrow-key", str(key)]
    rc = vigil([*argv, "--reason", reason, "--out", str(out), "--by", "dpo"])
    return rc, capsys.readouterr()


def test_unit_files_hold_no_readable_original(escrowed, originals) -> None:
    data, iid, _ = escrowed
    blob = (data / "escrow" / f"{iid}.esc").read_bytes()
    assert blob.startswith(b"VIGILESC")
    for p in data.rglob("*"):
        if p.is_file():
            raw = p.read_bytes()
            assert b"\xff\xd8\xff" not in raw, f"{p}: a JPEG in the clear"
            assert b"ftyp" not in raw and b"JFIF" not in raw, p
    # the unit only has the public key: nothing on it can open the file
    assert not list(data.rglob("*.pem"))


def test_escrow_key_opens_originals_and_reveal_is_audited(escrowed, originals, tmp_path, capsys):
    data, iid, priv = escrowed
    out = tmp_path / "case.avi"
    rc, io = _reveal(data, iid, priv, out, capsys)
    assert rc == 0, io.err
    frames = decode_clip(out.read_bytes(), "MJPG")
    assert len(frames) >= len(originals) - 2  # from the incident's pre-event frame on
    tail = originals[-len(frames) :]
    for got, want in zip(frames, tail, strict=True):
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 6  # the original, unmasked
    entry = [e for e in IncidentStore(data).audit.entries() if e["action"] == "reveal"]
    assert len(entry) == 1
    assert entry[0]["actor"] == "dpo" and entry[0]["detail"]["reason"] == "police 42"
    assert entry[0]["incident"] == iid and entry[0]["time"]
    assert IncidentStore(data).audit.verify() == []


def test_wrong_key_and_tampered_file_refused_clearly(escrowed, tmp_path, capsys) -> None:
    data, iid, _ = escrowed
    other, _ = generate_escrow_pair(tmp_path / "other.pem")
    rc, io = _reveal(data, iid, other, tmp_path / "x.mp4", capsys)
    assert rc == 1 and "wrong key" in io.err and not (tmp_path / "x.mp4").exists()
    p = data / "escrow" / f"{iid}.esc"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    p.write_bytes(bytes(raw))
    _, priv_path = None, tmp_path / "controller.pem"
    rc, io = _reveal(data, iid, priv_path, tmp_path / "y.mp4", capsys)
    assert rc == 1 and "tampered" in io.err and not (tmp_path / "y.mp4").exists()
    rc, io = _reveal(data, iid, priv_path, tmp_path / "z.mp4", capsys, reason="")
    assert rc == 1 and "reason" in io.err
    refused = [e for e in IncidentStore(data).audit.entries() if e["action"] == "reveal_refused"]
    assert len(refused) == 2 and "wrong key" in refused[0]["detail"]["error"]


def test_escrow_expires_on_its_own_schedule_and_hold_keeps_it(escrowed, tmp_path) -> None:
    data, iid, _ = escrowed
    store, escrow = IncidentStore(data), EscrowStore(data, retention_h=72.0)
    p = escrow.path(iid)
    assert escrow.enforce_retention() == []  # fresh: kept
    old = time.time() - 73 * 3600
    os.utime(p, (old, old))
    store.set_hold(iid, True, "dpo", "court order 7")
    assert escrow.enforce_retention() == [] and p.exists()  # legal hold keeps it
    store.set_hold(iid, False, "dpo")
    assert escrow.enforce_retention() == [iid] and not p.exists()
    assert store.get(iid)  # the anonymised incident itself stays (30 days)
    gone = [e for e in store.audit.entries() if e["action"] == "escrow_delete"]
    assert gone and "72 h" in gone[0]["detail"]["reason"]


def test_keygen_escrow_writes_the_pair_and_never_overwrites(tmp_path, capsys) -> None:
    out = tmp_path / "dc.pem"
    assert vigil(["incident", "keygen", "--escrow", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o077 == 0
    assert load_public_key(tmp_path / "dc.pub.pem")
    assert vigil(["incident", "keygen", "--escrow", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def _site(tmp_path: Path, pub: Path) -> Path:
    key = tmp_path / "rec.key"
    if not key.exists():
        generate_key_file(key)
    site = tmp_path / "site.toml"
    site.write_text(
        f'[camera]\nsource = "{FRAMES}"\nfps = 25\n[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[recording]\nkey_file = "{key}"\npre_event_s = 0.2\n'
        f'[recording.escrow]\nenabled = true\npublic_key = "{pub}"\n'
    )
    return site


def test_unit_seals_an_incidents_originals_through_its_loop(tmp_path: Path, originals) -> None:
    """`vigil run`'s own unit: the loop hands each original frame to the escrow sealer while
    the recorder has an incident open; closing the loop seals it."""
    from firmware.config import load
    from firmware.unit import RunOptions, build_unit

    priv, pub = generate_escrow_pair(tmp_path / "controller.pem")
    unit = build_unit(load(_site(tmp_path, pub)), RunOptions(fast=True, max_frames=20,
                                                             mqtt="none", watchdog=False))  # fmt: skip
    s = unit.loop.s
    assert s.recorder is not None and s.escrow is not None
    ev = Event("fight", "fight", EventPhase.START, Severity.ALERT, 0.0, 0, 0.0, 0)
    unit.loop.submit(lambda: s.recorder.on_event(ev))
    unit.loop.run()
    assert s.escrow.sealed and s.escrow.sealed == s.recorder.recorded
    out = tmp_path / "orig.avi"
    EscrowStore(tmp_path / "data").reveal(
        s.escrow.sealed[0], load_private_key(priv), out, "dpo", "test"
    )
    assert len(decode_clip(out.read_bytes(), "MJPG")) >= 19


def test_unit_refuses_to_start_without_the_escrow_public_key(tmp_path: Path, originals) -> None:
    from firmware.config import load
    from firmware.unit import RunOptions, build_unit

    missing = tmp_path / "nowhere.pub.pem"
    with pytest.raises(ValueError, match=r"escrow public key .*nowhere\.pub\.pem: not found"):
        build_unit(load(_site(tmp_path, missing)), RunOptions(fast=True, mqtt="none",
                                                              watchdog=False))  # fmt: skip
