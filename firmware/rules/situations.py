"""One event per situation: start, updates when it escalates or its people change, and an
end once its condition has been false for the rule's grace time (no floods)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from firmware.events.records import Event, EventPhase, Severity, new_event_id


@dataclass(slots=True)
class Situation:
    key: Hashable
    event_id: str
    type: str
    rule: str
    zone: str | None
    track_ids: list[int]
    severity: Severity
    start_time: float
    start_frame: int
    last_time: float
    last_frame: int
    grace_s: float
    explain: dict[str, Any] = field(default_factory=dict)

    def event(self, phase: EventPhase, t: float, frame: int) -> Event:
        ev = Event(
            type=self.type,
            rule=self.rule,
            phase=phase,
            severity=self.severity,
            start_time=self.start_time,
            start_frame=self.start_frame,
            time=t,
            frame=frame,
            event_id=self.event_id,
            zone=self.zone,
            track_ids=list(self.track_ids),
            explain=dict(self.explain),
        )
        if phase is EventPhase.END:
            ev.end_time = self.last_time
            ev.end_frame = self.last_frame
        return ev


class Situations:
    """Open situations by key; collects the events produced during one frame."""

    def __init__(self) -> None:
        self.open: dict[Hashable, Situation] = {}
        self.pending: list[Event] = []

    def observe(
        self,
        key: Hashable,
        t: float,
        frame: int,
        *,
        type: str,
        rule: str,
        severity: Severity,
        explain: dict[str, Any],
        track_ids: list[int],
        zone: str | None = None,
        grace_s: float = 1.0,
        start_time: float | None = None,
        start_frame: int | None = None,
    ) -> Situation:
        """The situation's condition holds at this frame: start it, or keep it alive (and
        send an update when its severity rises or its people change)."""
        s = self.open.get(key)
        if s is None:
            s = Situation(
                key=key,
                event_id=new_event_id(),
                type=type,
                rule=rule,
                zone=zone,
                track_ids=sorted(int(i) for i in track_ids),
                severity=severity,
                start_time=t if start_time is None else start_time,
                start_frame=frame if start_frame is None else start_frame,
                last_time=t,
                last_frame=frame,
                grace_s=grace_s,
                explain=explain,
            )
            self.open[key] = s
            self.pending.append(s.event(EventPhase.START, t, frame))
            return s
        ids = sorted({int(i) for i in track_ids})
        if ids != s.track_ids:  # the common case (same people) needs no union
            ids = sorted(set(s.track_ids).union(ids))
        changed = severity > s.severity or ids != s.track_ids
        s.severity = max(s.severity, severity)
        s.track_ids = ids
        s.explain = explain
        s.last_time = t
        s.last_frame = frame
        if changed:
            self.pending.append(s.event(EventPhase.UPDATE, t, frame))
        return s

    def instant(self, t: float, frame: int, **fields: Any) -> None:
        """A one-off event with no duration (a line crossing, a footfall summary)."""
        self.pending.append(Event.instant(t, frame, end_time=t, end_frame=frame, **fields))

    def sweep(self, t: float, frame: int) -> None:
        """End the situations whose condition has not held for their grace time."""
        for key in [k for k, s in self.open.items() if t - s.last_time > s.grace_s]:
            s = self.open.pop(key)
            self.pending.append(s.event(EventPhase.END, t, frame))

    def close_all(self, t: float, frame: int) -> None:
        for s in self.open.values():
            self.pending.append(s.event(EventPhase.END, t, frame))
        self.open.clear()

    def take(self) -> list[Event]:
        out, self.pending = self.pending, []
        return out
