"""Incident recorder: in-memory encoding, AES-GCM at rest, nothing unencrypted on disk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.events.records import Event, EventPhase, Severity
from firmware.privacy import Anonymiser, PrivacyConfig
from firmware.recording import (
    DecryptionError,
    IncidentRecorder,
    IncidentStore,
    RecordingConfig,
    RecordingKeyError,
    generate_key_file,
    load_key,
)
from firmware.recording.clip import decode_clip
from firmware.recording.crypto import decrypt, encrypt
from firmware.types import PERSON, Detections

W, H, FPS = 320, 240, 25.0
FILL = (96, 96, 96)
MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8", b"BM", b"\x1aE\xdf\xa3")


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every temporary file the code makes lands here, so the scan sees it."""
    t = tmp_path / "tmp"
    t.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(t))
    return t


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    p = tmp_path / "keys" / "rec.key"
    p.parent.mkdir()
    generate_key_file(p)
    return p


def person_frame(i: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A textured frame with one textured 'person' walking right."""
    rng = np.random.default_rng(i)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    x = 20 + (3 * i) % 240
    box = (x, 60, x + 40, 180)
    img[60:180, x : x + 40] = np.array([0, 0, 255], np.uint8)[None, None] * (
        rng.random((120, 40, 1)) > 0.5
    )
    return img, box


def event(
    frame: int, phase: EventPhase = EventPhase.START, severity: Severity = Severity.ALERT, **kw
) -> Event:
    t = frame / FPS
    return Event(
        "loitering",
        "loitering",
        phase,
        severity,
        t,
        frame,
        t,
        frame,
        zone="till",
        track_ids=[1],
        **kw,
    )


def scan_written(*roots: Path) -> list[str]:
    """Files under roots that hold an image or video in the clear."""
    bad = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                p = Path(dirpath) / name
                data = p.read_bytes()
                head = data[:16]
                media = any(head.startswith(m) for m in MEDIA_MAGIC) or b"ftyp" in head
                if (
                    media
                    or cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None
                ):
                    bad.append(str(p))
    return bad


def record_scene(
    data_dir: Path, key_file: Path, n: int, events: dict[int, list[Event]], **cfg
) -> IncidentRecorder:
    rcfg = RecordingConfig(key_file=str(key_file), pre_event_s=1.0, post_event_s=1.0, **cfg)
    rec = IncidentRecorder(rcfg, data_dir, FPS, (W, H), model_info={"detector": "test"}, unit="u1")
    anon = Anonymiser(PrivacyConfig(color=FILL))
    for i in range(n):
        img, box = person_frame(i)
        d = Detections(
            np.array([box], np.float32), np.array([0.9], np.float32), np.array([PERSON], np.int16)
        )
        rec.push(i, i / FPS, anon.apply(img, d, None))
        for ev in events.get(i, []):
            rec.on_event(ev)
    rec.close()
    return rec


def test_incident_encrypted_and_nothing_clear_on_disk(
    tmp_path: Path, key_file: Path, private_tmp: Path
) -> None:
    data = tmp_path / "data"
    ev = event(60)
    end = event(70, EventPhase.END, event_id=ev.event_id)
    rec = record_scene(data, key_file, 120, {60: [ev], 70: [end]})
    assert len(rec.recorded) == 1
    iid = rec.recorded[0]
    assert ev.incident_id == iid
    assert rec.on_event(event(130)) is None  # closed: nothing more is recorded
    rec.push(130, 130 / FPS, person_frame(0)[0])
    assert scan_written(data, private_tmp) == []
    assert list(private_tmp.iterdir()) == [], "no temporary file left behind"
    files = sorted(p.name for p in (data / "incidents" / iid).iterdir())
    assert files == ["clip.enc", "meta.json", "record.enc"]
    assert (data / "incidents" / iid / "clip.enc").read_bytes().startswith(b"VIGILENC")

    store = IncidentStore(data)
    key = load_key(key_file)
    frames = decode_clip(store.decrypt_clip(iid, key))
    # 1 s up to the event (frame 36) .. 1 s after its end (frame 95)
    assert 59 <= len(frames) <= 62
    record = store.decrypt_record(iid, key)
    assert record["events"][0]["event_id"] == ev.event_id
    assert record["zones"] == ["till"] and record["models"] == {"detector": "test"}
    start = record["start_frame"]
    assert start == 36  # the 25 buffered frames end with the event frame
    for k, f in enumerate(frames):
        _, (x1, y1, x2, y2) = person_frame(start + k)
        region = f[y1:y2, x1:x2].astype(int)
        close = (np.abs(region - FILL) < 24).all(axis=2).mean()
        assert close > 0.95, f"clip frame {k}: person not masked ({close:.2f})"


def test_event_extends_open_incident_and_minor_events_join(
    tmp_path: Path, key_file: Path, private_tmp: Path
) -> None:
    data = tmp_path / "data"
    first = event(30)
    second = event(50, EventPhase.UPDATE, event_id=first.event_id)
    end = event(60, EventPhase.END, event_id=first.event_id)
    minor = event(55, severity=Severity.INFO)
    minor.type = "deterrent"
    late_minor = event(100, severity=Severity.INFO)
    rec = record_scene(
        data, key_file, 110, {30: [first], 50: [second], 55: [minor], 60: [end], 100: [late_minor]}
    )
    assert len(rec.recorded) == 1
    assert first.incident_id == second.incident_id == minor.incident_id == rec.recorded[0]
    assert late_minor.incident_id is None  # no incident open then, and too minor to open one
    record = IncidentStore(data).decrypt_record(rec.recorded[0], load_key(key_file))
    assert len(record["deterrent_actions"]) == 1


def test_wrong_key_and_tampering_refused(tmp_path: Path, key_file: Path, private_tmp: Path) -> None:
    data = tmp_path / "data"
    rec = record_scene(data, key_file, 40, {10: [event(10)]})
    iid = rec.recorded[0]
    store = IncidentStore(data)
    other = tmp_path / "keys" / "other.key"
    generate_key_file(other)
    with pytest.raises(DecryptionError, match="wrong key"):
        store.decrypt_clip(iid, load_key(other))
    clip = data / "incidents" / iid / "clip.enc"
    blob = bytearray(clip.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    clip.write_bytes(bytes(blob))
    with pytest.raises(DecryptionError, match="tampered"):
        store.decrypt_clip(iid, load_key(key_file))
    # a part moved to another incident or role fails too
    good = encrypt(load_key(key_file), b"x", "a/clip")
    with pytest.raises(DecryptionError, match="tampered"):
        decrypt(load_key(key_file), good, "b/clip")
    with pytest.raises(DecryptionError, match="not a Vigil encrypted file"):
        decrypt(load_key(key_file), b"\xff\xd8\xff" + b"0" * 64, "a/clip")


def test_key_file_problems(tmp_path: Path) -> None:
    with pytest.raises(RecordingKeyError, match="not found"):
        load_key(tmp_path / "none.key")
    bad = tmp_path / "bad.key"
    bad.write_text("abc\n")
    with pytest.raises(RecordingKeyError, match="64 hex digits"):
        load_key(bad)
    raw = tmp_path / "raw.key"
    raw.write_bytes(bytes(range(32)))
    assert load_key(raw) == bytes(range(32))
    with pytest.raises(RecordingKeyError, match="already exists"):
        generate_key_file(raw)
    assert load_key(raw) == bytes(range(32))


def test_key_path_overrides_config(tmp_path: Path, key_file: Path, private_tmp: Path) -> None:
    rcfg = RecordingConfig(key_file="relative/missing.key")
    rec = IncidentRecorder(rcfg, tmp_path / "data", FPS, (W, H), key_path=key_file)
    assert rec.available
    rec.close()
    assert not rec.available


def test_without_key_nothing_is_recorded(tmp_path: Path, private_tmp: Path) -> None:
    data = tmp_path / "data"
    rec = record_scene(data, tmp_path / "missing.key", 30, {5: [event(5)]})
    assert not rec.available and "not found" in (rec.error or "")
    assert rec.recorded == []
    assert not (data / "incidents").exists()


def test_long_situation_split_by_max_clip(
    tmp_path: Path, key_file: Path, private_tmp: Path
) -> None:
    data = tmp_path / "data"
    evs = {i: [event(i, EventPhase.UPDATE if i else EventPhase.START)] for i in range(0, 150, 10)}
    rec = record_scene(data, key_file, 150, evs, max_clip_s=2.0)
    assert len(rec.recorded) >= 2
    assert scan_written(data, private_tmp) == []


def test_inference_failure_stores_fully_masked_frames(
    tmp_path: Path, key_file: Path, private_tmp: Path
) -> None:
    """Inference fails on frames 20-29: those frames, and the recovery ones, are stored masked whole."""
    data = tmp_path / "data"
    rcfg = RecordingConfig(key_file=str(key_file), pre_event_s=0.0, post_event_s=60.0)
    rec = IncidentRecorder(rcfg, data, FPS, (W, H))
    anon = Anonymiser(PrivacyConfig(color=FILL, recovery_frames=3))
    for i in range(50):
        img, box = person_frame(i)
        failing = 20 <= i < 30
        d = (
            None
            if failing
            else Detections(
                np.array([box], np.float32),
                np.array([0.9], np.float32),
                np.array([PERSON], np.int16),
            )
        )
        rec.push(i, i / FPS, anon.apply(img, d, None, inference_ok=not failing))
        if i == 0:
            rec.on_event(event(0))
    rec.close()
    frames = decode_clip(IncidentStore(data).decrypt_clip(rec.recorded[0], load_key(key_file)))
    assert len(frames) == 50
    whole = [float((np.abs(f.astype(int) - FILL) < 24).all(axis=2).mean()) for f in frames]
    assert all(w > 0.97 for w in whole[20:32]), "failure and 2 recovery frames fully masked"
    assert all(w < 0.3 for w in whole[:20] + whole[32:]), "the rest only where the person is"


def test_a_stored_clip_is_announced_with_its_sha256(
    tmp_path: Path, key_file: Path, private_tmp: Path
) -> None:
    """The hub's cases reference clips by sha256: the recorder announces each stored clip
    (an ``incident`` event) with the hash of the encrypted file as stored."""
    import hashlib

    data = tmp_path / "data"
    ev = event(60)
    rec = record_scene(
        data, key_file, 120, {60: [ev], 70: [event(70, EventPhase.END, event_id=ev.event_id)]}
    )
    (sealed,) = rec.take_sealed()
    iid = rec.recorded[0]
    assert (sealed.type, sealed.incident_id) == ("incident", iid)
    clip = next(p for p in data.rglob("clip.enc") if iid in str(p))
    assert sealed.explain["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert sealed.explain["bytes"] == clip.stat().st_size
    assert rec.take_sealed() == []  # announced once
