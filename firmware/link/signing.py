"""Command signatures: Ed25519 over the topic and the exact body bytes.

A command is ``{v: 1, body: bstr, sig: bstr}`` where ``body`` is the CBOR of
``{v, id, ts, ctr, args}`` and ``sig`` signs ``cbor([SIGN_CONTEXT, topic, body])``. Signing the
bytes (not a re-encoding) keeps every integrator's CBOR library out of the question; signing
the topic stops a command for one unit or command name being replayed on another.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGN_CONTEXT = "vigil-cmd/1"
MAX_COUNTER = 2**63 - 1


def signing_input(topic: str, body: bytes) -> bytes:
    return cbor2.dumps([SIGN_CONTEXT, topic, body])


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The hub's public key from a PEM file; a clear ValueError when it is not Ed25519."""
    data = Path(path).read_bytes()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key ({type(key).__name__})")
    return key


def verify(key: Ed25519PublicKey, topic: str, body: bytes, sig: bytes) -> bool:
    try:
        key.verify(sig, signing_input(topic, body))
    except InvalidSignature:
        return False
    return True


def loads_exact(data: bytes) -> object:
    """Decode one CBOR item and refuse trailing bytes (cbor2.loads ignores them)."""
    fp = io.BytesIO(data)
    value = cbor2.CBORDecoder(fp).decode()
    if fp.tell() != len(data):
        raise ValueError(f"{len(data) - fp.tell()} trailing byte(s) after the CBOR item")
    return value


class Signer:
    """The hub's side: an Ed25519 private key and a strictly increasing counter.

    The counter is ``max(last + 1, microseconds since 1970)`` and is remembered in
    ``<key>.counter`` so that it keeps increasing across runs of the hub tool.
    """

    def __init__(self, key: Ed25519PrivateKey, counter_file: Path | None = None):
        self.key = key
        self.counter_file = counter_file
        self._last = 0
        self._lock = threading.Lock()  # one key may sign for several threads (API, bridge)
        if counter_file is not None and counter_file.exists():
            try:
                self._last = int(counter_file.read_text().strip() or 0)
            except ValueError:
                self._last = 0

    @classmethod
    def generate(cls, private_path: Path, public_path: Path) -> Signer:
        """Make a new key pair: private key PEM (mode 0600) and the public key PEM for units."""
        key = Ed25519PrivateKey.generate()
        private_path = Path(private_path)
        private_path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        Path(public_path).write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(key, private_path.with_suffix(private_path.suffix + ".counter"))

    @classmethod
    def load(cls, private_path: str | Path) -> Signer:
        private_path = Path(private_path)
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{private_path}: not an Ed25519 private key")
        return cls(key, private_path.with_suffix(private_path.suffix + ".counter"))

    def next_counter(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            if self.counter_file is not None:
                self.counter_file.write_text(str(self._last))
            return self._last

    def body(
        self, request_id: str, args: dict, ts: float | None = None, ctr: int | None = None
    ) -> bytes:
        return cbor2.dumps(
            {
                "v": 1,
                "id": request_id,
                "ts": time.time() if ts is None else ts,
                "ctr": self.next_counter() if ctr is None else ctr,
                "args": args,
            }
        )

    def sign(
        self,
        topic: str,
        request_id: str,
        args: dict,
        *,
        ts: float | None = None,
        ctr: int | None = None,
    ) -> bytes:
        """The complete signed command payload for ``topic``."""
        body = self.body(request_id, args, ts, ctr)
        sig = self.key.sign(signing_input(topic, body))
        return cbor2.dumps({"v": 1, "body": body, "sig": sig})
