"""AES-256-GCM at rest: the provisioned key file and the encrypted file format.

File = header || ciphertext+tag, header = b"VIGILENC" | version (1 byte) | key id (8 bytes)
| nonce (12 bytes). The header and a context string (incident id and part name) are the
associated data, so a file cannot be swapped for another incident's or part without the
decryption failing. The key id (a hash of the key, not the key) lets a wrong key be named
as such rather than reported as damage.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

MAGIC = b"VIGILENC"
VERSION = 1
HEADER_LEN = len(MAGIC) + 1 + 8 + 12


class RecordingKeyError(ValueError):
    """The key file is missing, unreadable or malformed."""


class DecryptionError(ValueError):
    """An encrypted file cannot be opened: wrong key, not ours, damaged or tampered with."""


def load_key(path: str | Path) -> bytes:
    """Read a 256-bit key: 32 raw bytes, or 64 hex digits (whitespace ignored)."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise RecordingKeyError(
            f"key file {p}: not found (provision one with `vigil incident keygen`)"
        ) from None
    except OSError as e:
        raise RecordingKeyError(f"key file {p}: cannot read: {e.strerror or e}") from None
    key: bytes | None = None
    if len(data) == 32:
        key = data
    else:
        text = data.strip()
        try:
            if len(text) == 64:
                key = bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            key = None
    if key is None:
        raise RecordingKeyError(
            f"key file {p}: expected 32 raw bytes or 64 hex digits, got {len(data)} bytes"
        )
    try:
        mode = p.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "key file %s is readable by other users (mode %o): chmod 600 it", p, mode & 0o777
            )
    except OSError:
        pass
    return key


def generate_key_file(path: str | Path) -> bytes:
    """Create a new random key file (mode 600, hex); refuses to overwrite an existing file."""
    p = Path(path).expanduser()
    key = AESGCM.generate_key(bit_length=256)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise RecordingKeyError(f"key file {p}: already exists, not overwritten") from None
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def key_id(key: bytes) -> bytes:
    """8 bytes that identify a key without revealing it."""
    return hashlib.sha256(b"vigil-key-id:" + key).digest()[:8]


def encrypt(key: bytes, plaintext: bytes, context: str) -> bytes:
    """One encrypted file's bytes; ``context`` names what it is (incident id / part)."""
    nonce = os.urandom(12)
    header = MAGIC + bytes([VERSION]) + key_id(key) + nonce
    return header + AESGCM(key).encrypt(nonce, plaintext, header + context.encode())


def decrypt(key: bytes, blob: bytes, context: str, name: str = "file") -> bytes:
    """The plaintext, or DecryptionError saying clearly why not."""
    if len(blob) < HEADER_LEN + 16 or not blob.startswith(MAGIC):
        raise DecryptionError(f"{name}: not a Vigil encrypted file (or truncated)")
    version = blob[len(MAGIC)]
    if version != VERSION:
        raise DecryptionError(f"{name}: unsupported format version {version}")
    kid = blob[len(MAGIC) + 1 : len(MAGIC) + 9]
    if kid != key_id(key):
        raise DecryptionError(
            f"{name}: wrong key: it was encrypted with key id {kid.hex()}, "
            f"the key given has id {key_id(key).hex()}"
        )
    header = blob[:HEADER_LEN]
    nonce = header[-12:]
    try:
        return AESGCM(key).decrypt(nonce, blob[HEADER_LEN:], header + context.encode())
    except InvalidTag:
        raise DecryptionError(
            f"{name}: authentication failed: the file is damaged or has been tampered with"
        ) from None
