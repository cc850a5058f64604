"""Append-only audit log of every recording, export, hold and deletion.

JSON lines; each entry carries the SHA-256 of the previous entry and its own, so removing,
reordering or editing an entry breaks the chain and ``verify`` reports where. A chain alone
cannot show its own end cut off, so the head (entry count and last hash) is kept apart in
``audit.head``, rewritten atomically after every entry: truncating, emptying or deleting the
log no longer matches the head, and a missing head with a non-empty log is reported too.
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
        self.head_path = self.path.with_suffix(".head")
        self._lock = threading.Lock()

    def head(self) -> dict[str, Any] | None:
        """The head kept apart: ``{"count", "hash"}``, or None when it is missing/unreadable."""
        try:
            head = json.loads(self.head_path.read_text(encoding="utf-8"))
            return {"count": int(head["count"]), "hash": str(head["hash"])}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_head(self, count: int, last: str) -> None:
        tmp = self.head_path.with_name(f".{self.head_path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            data = json.dumps({"count": count, "hash": last}).encode()
            if os.write(fd, data) != len(data):
                raise OSError(28, "short write", str(tmp))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)

    def append(
        self, action: str, incident: str | None, actor: str, **detail: Any
    ) -> dict[str, Any]:
        """Write one entry (fsynced) and the head; raises OSError when it cannot (callers
        refuse what cannot be audited)."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            prev = self._last_hash()
            head = self.head()
            count = head["count"] if head is not None else len(self.entries())
            entry: dict[str, Any] = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "action": action,
                "incident": incident,
                "actor": actor,
                "detail": detail,
                "prev": prev,
            }
            entry["hash"] = _digest(entry)
            line = (json.dumps(entry, sort_keys=True) + "\n").encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                size = os.fstat(fd).st_size
                if os.write(fd, line) != len(line):
                    os.ftruncate(fd, size)
                    raise OSError(28, "short write (disk full)", str(self.path))
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_head(count + 1, entry["hash"])
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
        entries = self.entries()
        for i, e in enumerate(entries, start=1):
            if "corrupt" in e:
                problems.append(f"entry {i}: not valid JSON")
                prev = None
                continue
            if prev is not None and e.get("prev") != prev:
                problems.append(f"entry {i}: does not follow entry {i - 1} (removed or reordered)")
            if _digest(e) != e.get("hash"):
                problems.append(f"entry {i}: content does not match its hash (edited)")
            prev = e.get("hash")
        return problems + self._check_head(entries)

    def _check_head(self, entries: list[dict[str, Any]]) -> list[str]:
        head = self.head()
        if head is None:
            return [
                f"head {self.head_path.name} missing: cannot tell whether entries were cut off"
            ] * bool(entries or self.head_path.exists())
        n = len(entries)
        if n == 0 and head["count"] > 0:
            gone = "deleted" if not self.path.exists() else "emptied"
            return [f"log {gone}: the head records {head['count']} entries"]
        if n < head["count"]:
            return [f"truncated: {n} entries, the head records {head['count']}"]
        if n > head["count"]:
            return [
                f"{n - head['count']} entries after the head's last one (appended outside the log)"
            ]
        if entries and entries[-1].get("hash") != head["hash"]:
            return ["the last entry is not the one the head records (replaced)"]
        return []

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
