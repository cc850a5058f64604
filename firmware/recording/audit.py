"""Append-only audit log of every recording, export, hold and deletion.

JSON lines; each entry carries the SHA-256 of the previous entry and its own, so removing,
reordering or editing an entry breaks the chain and ``verify`` reports where.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


class AuditLog:
    """The unit's audit log (``<data_dir>/audit.log``); safe to share between threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(
        self, action: str, incident: str | None, actor: str, **detail: Any
    ) -> dict[str, Any]:
        """Write one entry (fsynced) and return it."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            prev = self._last_hash()
            entry: dict[str, Any] = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "action": action,
                "incident": incident,
                "actor": actor,
                "detail": detail,
                "prev": prev,
            }
            entry["hash"] = _digest(entry)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    out.append({"corrupt": line})
        return out

    def verify(self) -> list[str]:
        """Problems found in the hash chain (empty when intact)."""
        problems = []
        prev = GENESIS
        for i, e in enumerate(self.entries(), start=1):
            if "corrupt" in e:
                problems.append(f"entry {i}: not valid JSON")
                prev = None
                continue
            if prev is not None and e.get("prev") != prev:
                problems.append(f"entry {i}: does not follow entry {i - 1} (removed or reordered)")
            if _digest(e) != e.get("hash"):
                problems.append(f"entry {i}: content does not match its hash (edited)")
            prev = e.get("hash")
        return problems

    def _last_hash(self) -> str:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return GENESIS
        with open(self.path, "rb") as f:
            f.seek(max(0, self.path.stat().st_size - 4096))
            tail = f.read().splitlines()
        for line in reversed(tail):
            try:
                return json.loads(line)["hash"]
            except (json.JSONDecodeError, KeyError):
                continue
        return GENESIS
