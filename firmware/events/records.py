"""Event records: what happened, where, to which tracks, and why the rule fired.

A situation produces one event id with phases ``start`` -> ``update``* -> ``end`` (no floods).
``explain`` carries the measured values and the thresholds that fired the rule, so a store
manager or a data-protection officer can check every alert. No images, no identities.
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class Severity(enum.IntEnum):
    INFO = 0
    NOTICE = 1
    WARN = 2
    ALERT = 3


class EventPhase(enum.StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"
    INSTANT = "instant"  # one-off events with no duration (a line crossing, a health report)


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class Event:
    """One event record. Times are seconds on the source clock; frames count from 0."""

    type: str  # loitering, grab_and_run, running, fight, fall, left_object, crowding, intrusion, line_crossing, deterrent, health
    rule: str
    phase: EventPhase
    severity: Severity
    start_time: float
    start_frame: int
    time: float  # time of this record
    frame: int
    event_id: str = field(default_factory=new_event_id)
    end_time: float | None = None
    end_frame: int | None = None
    zone: str | None = None
    track_ids: list[int] = field(default_factory=list)
    explain: dict[str, Any] = field(default_factory=dict)
    incident_id: str | None = None
    # floor position (metres on the store plan) of the tracks involved, on a calibrated
    # camera: [{"id": track id, "floor": [x, y]}]; None (left off the wire) otherwise
    floor: list[dict[str, Any]] | None = None
    # stamped once by the event bus (firmware/events/bus.py) before any consumer sees it
    seq: int | None = None  # per-session sequence number
    unit: str | None = None
    site: str | None = None
    session: int | None = None  # the unit's start count (docs/mqtt.md)
    msg_id: str | None = None  # unique per record: the hub de-duplicates by it

    @classmethod
    def instant(cls, t: float, frame: int, **fields: Any) -> Event:
        """A one-off record (phase INSTANT) that starts and is reported at ``t``/``frame``."""
        return cls(
            phase=EventPhase.INSTANT,
            start_time=t,
            start_frame=frame,
            time=t,
            frame=frame,
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["v"] = SCHEMA_VERSION
        d["phase"] = self.phase.value
        d["severity"] = int(self.severity)
        d["severity_name"] = self.severity.name.lower()
        d["track_ids"] = [int(t) for t in self.track_ids]
        d["explain"] = _plain(self.explain)
        if self.floor is None:
            del d["floor"]  # uncalibrated: the record is as before floors existed
        else:
            d["floor"] = _plain(self.floor)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        d = dict(d)
        for wire_only in ("v", "severity_name"):  # added by to_dict
            d.pop(wire_only, None)
        d["phase"] = EventPhase(d["phase"])
        d["severity"] = Severity(d["severity"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)


def _plain(v: Any) -> Any:
    """numpy scalars/arrays and tuples -> plain JSON/CBOR types."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist"):
        return _plain(v.tolist())
    if isinstance(v, float):
        return round(v, 4)
    return v
