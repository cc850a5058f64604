"""Escrowed originals: an incident's unmasked frames sealed to a data controller's public key.

Off by default (``[recording.escrow]``). While an incident is open, the original frames
(plus the ``pre_event_s`` before it, kept as JPEG in RAM) are collected in memory; when the
incident closes they are sealed with X25519 + HKDF-SHA256 + AES-256-GCM to the configured
public key and written as ``<data_dir>/escrow/<incident>.esc``. The unit holds only the
public key, so it cannot open what it wrote. ``reveal`` (the controller, with the private
key) opens one, always through the audit log. Escrowed originals have their own, shorter
retention (``retention_h``, default 72 h) unless the incident is on legal hold.

File = b"VIGILESC" | version (1) | recipient key id (8) | ephemeral X25519 public key (32)
| nonce (12) || AES-GCM(ciphertext+tag); the header and the incident id are associated data.
Plaintext = 4-byte length + JSON header (fps, size, frame indices) + length-prefixed JPEGs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from firmware.recording.audit import AuditLog
from firmware.recording.config import EscrowConfig
from firmware.recording.crypto import DecryptionError, RecordingKeyError
from firmware.recording.store import write_atomic

log = logging.getLogger(__name__)

MAGIC = b"VIGILESC"
VERSION = 1
HEADER_LEN = len(MAGIC) + 1 + 8 + 32 + 12
SUFFIX = ".esc"


# ---- keys ---------------------------------------------------------------------------------
def _raw(pub: X25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def escrow_key_id(pub: X25519PublicKey) -> bytes:
    """8 bytes naming an escrow key pair (a hash of its public half)."""
    return hashlib.sha256(b"vigil-escrow-key-id:" + _raw(pub)).digest()[:8]


def generate_escrow_pair(private_path: str | Path) -> tuple[Path, Path]:
    """Write a new X25519 pair: ``private_path`` (PKCS#8 PEM, mode 600, for the controller)
    and ``<stem>.pub.pem`` beside it (for the unit); never overwrites either."""
    priv_path = Path(private_path).expanduser()
    pub_path = priv_path.with_name(priv_path.stem + ".pub.pem")
    for p in (priv_path, pub_path):
        if p.exists():
            raise RecordingKeyError(f"escrow key {p}: already exists, not overwritten")
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv_path, pub_path


def load_public_key(path: str | Path) -> X25519PublicKey:
    """The controller's X25519 public key (PEM), or RecordingKeyError saying what is wrong."""
    p = Path(path).expanduser()
    try:
        key = serialization.load_pem_public_key(p.read_bytes())
    except FileNotFoundError:
        raise RecordingKeyError(
            f"escrow public key {p}: not found (make a pair with `vigil incident keygen --escrow`)"
        ) from None
    except (ValueError, OSError) as e:
        raise RecordingKeyError(f"escrow public key {p}: not a PEM public key ({e})") from None
    if not isinstance(key, X25519PublicKey):
        raise RecordingKeyError(f"escrow public key {p}: not an X25519 key")
    return key


def load_private_key(path: str | Path) -> X25519PrivateKey:
    """The controller's X25519 private key (unencrypted PKCS#8 PEM)."""
    p = Path(path).expanduser()
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except FileNotFoundError:
        raise RecordingKeyError(f"escrow key {p}: not found") from None
    except (ValueError, TypeError, OSError) as e:
        raise RecordingKeyError(
            f"escrow key {p}: not an unencrypted PEM private key ({e})"
        ) from None
    if not isinstance(key, X25519PrivateKey):
        raise RecordingKeyError(f"escrow key {p}: not an X25519 private key")
    return key


# ---- sealing ------------------------------------------------------------------------------
def _aes_key(shared: bytes, eph: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(hashes.SHA256(), 32, salt=eph + recipient, info=b"vigil-escrow v1")
    return hkdf.derive(shared)


def seal(pub: X25519PublicKey, plaintext: bytes, context: str) -> bytes:
    """Encrypt to the holder of ``pub``'s private key; ``context`` is the incident id."""
    eph = X25519PrivateKey.generate()
    eph_raw = _raw(eph.public_key())
    key = _aes_key(eph.exchange(pub), eph_raw, _raw(pub))
    nonce = os.urandom(12)
    header = MAGIC + bytes([VERSION]) + escrow_key_id(pub) + eph_raw + nonce
    return header + AESGCM(key).encrypt(nonce, plaintext, header + context.encode())


def unseal(priv: X25519PrivateKey, blob: bytes, context: str, name: str = "file") -> bytes:
    """The plaintext, or DecryptionError: not ours, wrong key, damaged or tampered with."""
    if len(blob) < HEADER_LEN + 16 or not blob.startswith(MAGIC):
        raise DecryptionError(f"{name}: not a Vigil escrow file (or truncated)")
    if blob[len(MAGIC)] != VERSION:
        raise DecryptionError(f"{name}: unsupported escrow format version {blob[len(MAGIC)]}")
    kid = blob[len(MAGIC) + 1 : len(MAGIC) + 9]
    pub = priv.public_key()
    if kid != escrow_key_id(pub):
        raise DecryptionError(
            f"{name}: wrong key: sealed to escrow key id {kid.hex()}, "
            f"the key given has id {escrow_key_id(pub).hex()}"
        )
    header = blob[:HEADER_LEN]
    eph_raw, nonce = header[-44:-12], header[-12:]
    try:
        shared = priv.exchange(X25519PublicKey.from_public_bytes(eph_raw))
        key = _aes_key(shared, eph_raw, _raw(pub))
        return AESGCM(key).decrypt(nonce, blob[HEADER_LEN:], header + context.encode())
    except (InvalidTag, ValueError):
        raise DecryptionError(
            f"{name}: authentication failed: the file is damaged or has been tampered with"
        ) from None


def pack_frames(meta: dict[str, Any], jpegs: list[bytes]) -> bytes:
    head = json.dumps(meta).encode()
    parts = [struct.pack(">I", len(head)), head]
    for j in jpegs:
        parts += [struct.pack(">I", len(j)), j]
    return b"".join(parts)


def unpack_frames(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    (n,) = struct.unpack_from(">I", data, 0)
    meta = json.loads(data[4 : 4 + n])
    jpegs, pos = [], 4 + n
    while pos < len(data):
        (k,) = struct.unpack_from(">I", data, pos)
        jpegs.append(data[pos + 4 : pos + 4 + k])
        pos += 4 + k
    return meta, jpegs


# ---- on the unit --------------------------------------------------------------------------
@dataclass(slots=True)
class _Open:
    id: str
    frames: list[tuple[int, float, bytes]] = field(default_factory=list)


class EscrowSealer:
    """Collects an open incident's original frames (JPEG, RAM) and seals them when it
    closes. Fed by the loop with each original frame and the recorder's open incident."""

    def __init__(self, cfg: EscrowConfig, data_dir: Path, public_key: X25519PublicKey,
                 fps: float, pre_event_s: float, max_clip_s: float):  # fmt: skip
        self.cfg = cfg
        self.root = Path(data_dir) / "escrow"
        self.pub = public_key
        self.fps = float(fps)
        self.pre_event_s = pre_event_s
        self.max_frames = int(max_clip_s * fps) + int(pre_event_s * fps) + 1
        self._buffer: deque[tuple[int, float, bytes]] = deque(maxlen=max(1, int(pre_event_s * fps)))
        self._open: _Open | None = None
        self.sealed: list[str] = []
        self.size: tuple[int, int] | None = None
        self.store = EscrowStore(data_dir, cfg.retention_h)
        self.store.enforce_retention()

    def push(
        self, index: int, timestamp: float, original: np.ndarray, incident: str | None
    ) -> None:
        """One original frame; ``incident``: the recorder's open incident id (or None)."""
        if self._open is not None and self._open.id != incident:
            self._seal(self._open)
            self._open = None
        ok, jpg = cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if not ok:
            return
        self.size = (original.shape[1], original.shape[0])
        item = (index, timestamp, jpg.tobytes())
        if incident is not None:
            if self._open is None:
                pre = [b for b in self._buffer if b[1] >= timestamp - self.pre_event_s]
                self._open = _Open(incident, pre)
            if len(self._open.frames) < self.max_frames:
                self._open.frames.append(item)
        self._buffer.append(item)

    def close(self) -> None:
        """Seal the incident still open (end of the stream)."""
        if self._open is not None:
            self._seal(self._open)
            self._open = None
        self._buffer.clear()

    def _seal(self, inc: _Open) -> None:
        meta = {"incident_id": inc.id, "fps": self.fps, "frame_size": list(self.size or (0, 0)),
                "frames": [[i, t] for i, t, _ in inc.frames], "sealed": time.time()}  # fmt: skip
        blob = seal(self.pub, pack_frames(meta, [f[2] for f in inc.frames]), inc.id)
        inc.frames.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / f"{inc.id}{SUFFIX}", blob)
        self.sealed.append(inc.id)
        self.store.audit.append("escrow", inc.id, "unit", frames=len(meta["frames"]),
                                bytes=len(blob), key_id=escrow_key_id(self.pub).hex())  # fmt: skip
        self.store.enforce_retention()
        log.info("incident %s: original frames sealed to escrow key %s", inc.id,
                 escrow_key_id(self.pub).hex())  # fmt: skip


# ---- the controller's side and retention --------------------------------------------------
class EscrowStore:
    """Escrowed originals in ``<data_dir>/escrow``: reveal (audited) and retention."""

    def __init__(self, data_dir: Path, retention_h: float = 72.0):
        self.root = Path(data_dir) / "escrow"
        self.incidents = Path(data_dir) / "incidents"
        self.retention_h = retention_h
        self.audit = AuditLog(Path(data_dir) / "audit.log")

    def path(self, incident_id: str) -> Path:
        if not incident_id or "/" in incident_id or incident_id.startswith("."):
            raise DecryptionError(f"incident {incident_id!r}: not a valid incident id")
        return self.root / f"{incident_id}{SUFFIX}"

    def list(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob(f"*{SUFFIX}")) if self.root.is_dir() else []

    def reveal(self, incident_id: str, priv: X25519PrivateKey, out: Path, actor: str,
               reason: str) -> Path:  # fmt: skip
        """Decrypt one incident's originals into a video file ``out``; audited, also when
        refused (wrong key, damaged file)."""
        if not reason.strip():
            raise DecryptionError("a reveal needs a reason (case or request reference)")
        p = self.path(incident_id)
        if not p.is_file():
            raise DecryptionError(
                f"incident {incident_id}: no escrowed originals (never escrowed, or expired)"
            )
        try:
            meta, jpegs = unpack_frames(
                unseal(priv, p.read_bytes(), incident_id, f"incident {incident_id} originals")
            )
        except DecryptionError as e:
            self.audit.append("reveal_refused", incident_id, actor, reason=reason, error=str(e))
            raise
        write_video(out, meta, jpegs)
        self.audit.append("reveal", incident_id, actor, reason=reason, to=str(out),
                          frames=len(jpegs), key_id=escrow_key_id(priv.public_key()).hex())  # fmt: skip
        return out

    def enforce_retention(self, now: float | None = None, actor: str = "retention") -> list[str]:
        """Delete escrowed originals older than ``retention_h`` unless their incident is on
        legal hold; also those whose incident is gone. Each deletion is audited."""
        now = time.time() if now is None else now
        gone = []
        for iid in self.list():
            p = self.path(iid)
            held, exists = _incident_hold(self.incidents / iid)
            age_h = (now - p.stat().st_mtime) / 3600.0
            why = None
            if not exists and age_h > 1.0:
                why = "incident deleted"
            elif age_h > self.retention_h and not held:
                why = f"escrow retention ({self.retention_h:g} h)"
            if why:
                p.unlink(missing_ok=True)
                self.audit.append("escrow_delete", iid, actor, reason=why)
                gone.append(iid)
        return gone


def _incident_hold(folder: Path) -> tuple[bool, bool]:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, folder.is_dir()
    return bool(meta.get("hold")), True


def write_video(out: Path, meta: dict[str, Any], jpegs: list[bytes]) -> None:
    """The frames as a clip: MJPG for ``.avi``, else mp4v."""
    out = Path(out)
    w, h = meta["frame_size"]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if out.suffix.lower() == ".avi" else "mp4v"))
    vw = cv2.VideoWriter(str(out), fourcc, float(meta.get("fps") or 25.0), (int(w), int(h)))
    if not vw.isOpened():
        raise OSError(f"--out {out}: cannot write a video there")
    try:
        for j in jpegs:
            vw.write(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR))
    finally:
        vw.release()
