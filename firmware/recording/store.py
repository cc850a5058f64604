"""Incidents on disk: listing, legal hold, export (decryption), deletion and retention.

Layout under ``<data_dir>/incidents/<id>/``: ``clip.enc`` (the encrypted anonymised clip),
``record.enc`` (the encrypted incident record: event timeline, track boxes, zones,
deterrent actions, model versions) and ``meta.json`` (plaintext: times, event types,
severity, sizes, legal hold; what retention and listing need, nothing about people).
Every export, hold, release and deletion goes to the audit log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.recording.audit import AuditLog
from firmware.recording.crypto import decrypt

log = logging.getLogger(__name__)

CLIP = "clip.enc"
RECORD = "record.enc"
META = "meta.json"


class IncidentError(ValueError):
    """An incident command that cannot be carried out (unknown id, held, ...)."""


@dataclass(slots=True)
class IncidentInfo:
    id: str
    path: Path
    meta: dict[str, Any]

    @property
    def created(self) -> float:
        return float(self.meta.get("created", 0.0))

    @property
    def held(self) -> bool:
        return bool(self.meta.get("hold"))

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())


def write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` whole (fsynced) to a hidden temporary name next to ``path``; on any
    failure (a destination that fills up) the temporary file is removed and OSError raised."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)  # may write less than asked when the disk fills
            if n <= 0:
                raise OSError(28, "No space left on device", str(path))
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: never a half file."""
    os.replace(write_temp(path, data), path)


class IncidentStore:
    """The incidents kept by one unit, with retention by age and quota and legal hold."""

    def __init__(self, data_dir: Path, max_age_days: float = 30.0, quota_mb: float = 2048.0):
        self.root = Path(data_dir) / "incidents"
        self.audit = AuditLog(Path(data_dir) / "audit.log")
        self.max_age_s = max_age_days * 86400.0
        self.quota_bytes = int(quota_mb * 1024 * 1024)

    # ---- reading ----------------------------------------------------------------------
    def list(self) -> list[IncidentInfo]:
        """Complete incidents, oldest first."""
        if not self.root.is_dir():
            return []
        out = []
        for d in self.root.iterdir():
            if d.name.startswith(".") or not (d / META).is_file():
                continue
            try:
                meta = json.loads((d / META).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                log.warning("incident %s: unreadable %s (%s); skipped", d.name, META, e)
                continue
            out.append(IncidentInfo(d.name, d, meta))
        return sorted(out, key=lambda i: (i.created, i.id))

    def get(self, incident_id: str) -> IncidentInfo:
        for info in self.list():
            if info.id == incident_id:
                return info
        raise IncidentError(f"no incident {incident_id!r} in {self.root}")

    def decrypt_clip(self, incident_id: str, key: bytes) -> bytes:
        info = self.get(incident_id)
        return decrypt(
            key, (info.path / CLIP).read_bytes(), f"{info.id}/clip", f"incident {info.id} clip"
        )

    def decrypt_record(self, incident_id: str, key: bytes) -> dict[str, Any]:
        info = self.get(incident_id)
        blob = (info.path / RECORD).read_bytes()
        return json.loads(decrypt(key, blob, f"{info.id}/record", f"incident {info.id} record"))

    # ---- writing ----------------------------------------------------------------------
    def add(
        self, incident_id: str, clip_enc: bytes, record_enc: bytes, meta: dict[str, Any]
    ) -> IncidentInfo:
        """Store a finished incident: written under a hidden name, then renamed into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{incident_id}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        write_atomic(tmp / CLIP, clip_enc)
        write_atomic(tmp / RECORD, record_enc)
        write_atomic(tmp / META, json.dumps(meta, indent=1, sort_keys=True).encode())
        os.replace(tmp, self.root / incident_id)
        info = IncidentInfo(incident_id, self.root / incident_id, meta)
        self.audit.append(
            "record", incident_id, "unit", bytes=info.size, events=meta.get("event_types", [])
        )
        return info

    def export(
        self, incident_id: str, key: bytes, out: Path, actor: str, reason: str = ""
    ) -> list[Path]:
        """Decrypt the clip to ``out`` and the record to ``<out stem>.record.json``."""
        info = self.get(incident_id)
        clip = self.decrypt_clip(incident_id, key)
        record = self.decrypt_record(incident_id, key)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        rec_path = out.with_name(out.stem + ".record.json")
        temps: list[Path] = []
        try:
            temps.append(write_temp(out, clip))
            temps.append(
                write_temp(rec_path, json.dumps(record, indent=1, sort_keys=True).encode())
            )
            try:
                self.audit.append(
                    "export", info.id, actor, reason=reason, to=str(out.resolve()), bytes=len(clip)
                )
            except OSError as e:
                raise IncidentError(
                    f"export refused: the audit log {self.audit.path} cannot be written "
                    f"({e.strerror or e}); an export must be audited"
                ) from None
        except BaseException:
            for t in temps:
                t.unlink(missing_ok=True)
            raise
        os.replace(temps[0], out)
        os.replace(temps[1], rec_path)
        return [out, rec_path]

    def verify_audit(self) -> list[str]:
        """Problems of the audit log: its chain, its head, and incidents it does not record."""
        problems = self.audit.verify()
        recorded = {e.get("incident") for e in self.audit.entries() if e.get("action") == "record"}
        missing = [i.id for i in self.list() if i.id not in recorded]
        if missing:
            problems.append(
                f"{len(missing)} stored incident(s) have no 'record' entry: {', '.join(missing[:5])}"
            )
        return problems

    def set_hold(self, incident_id: str, on: bool, actor: str, reason: str = "") -> IncidentInfo:
        """Set or release the legal hold (held incidents are never deleted by retention)."""
        info = self.get(incident_id)
        if on and not reason:
            raise IncidentError("a legal hold needs a reason (case or request reference)")
        info.meta["hold"] = (
            {
                "by": actor,
                "reason": reason,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            if on
            else None
        )
        write_atomic(info.path / META, json.dumps(info.meta, indent=1, sort_keys=True).encode())
        self.audit.append("hold" if on else "release", info.id, actor, reason=reason)
        return info

    def delete(self, incident_id: str, actor: str, reason: str) -> None:
        """Delete one incident; refused while it is on legal hold."""
        info = self.get(incident_id)
        if info.held:
            raise IncidentError(
                f"incident {incident_id} is on legal hold ({info.meta['hold'].get('reason')}); release it first"
            )
        self._remove(info, actor, reason)

    def _remove(self, info: IncidentInfo, actor: str, reason: str) -> None:
        size = info.size
        shutil.rmtree(info.path)
        self.audit.append("delete", info.id, actor, reason=reason, bytes=size)

    def enforce_retention(self, now: float | None = None, dry_run: bool = False) -> list[str]:
        """Delete incidents past the age limit, then the oldest until under the quota.

        Held incidents are skipped (and counted against the quota). Returns the ids deleted
        (or that would be, with ``dry_run``).
        """
        now = time.time() if now is None else now
        gone: list[str] = []
        self._clean_partials()
        incidents = self.list()
        keep = []
        for info in incidents:
            if not info.held and now - info.created > self.max_age_s:
                gone.append(info.id)
                if not dry_run:
                    self._remove(info, "retention", f"older than {self.max_age_s / 86400:g} days")
            else:
                keep.append(info)
        total = sum(i.size for i in keep)
        for info in keep:
            if total <= self.quota_bytes:
                break
            if info.held:
                continue
            total -= info.size
            gone.append(info.id)
            if not dry_run:
                self._remove(
                    info, "retention", f"disk quota {self.quota_bytes // (1024 * 1024)} MB"
                )
        if total > self.quota_bytes:
            log.warning(
                "incidents on legal hold alone exceed the recording quota (%d bytes)", total
            )
        return gone

    def _clean_partials(self) -> None:
        """Remove incidents interrupted while being written (encrypted parts only)."""
        if self.root.is_dir():
            for d in self.root.glob(".*.partial"):
                if time.time() - d.stat().st_mtime > 3600:  # not one being written now
                    shutil.rmtree(d, ignore_errors=True)
