"""The controller's bookkeeping: why an output is on, its on-time history, a running escalation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from firmware.deter.config import DeterrentConfig, EscalationPolicy
from firmware.deter.outputs import Output, parse_pin
from firmware.events.records import Event, Severity


@dataclass
class _Cause:
    """Why an output is being switched: the rule event and stage behind it."""

    rule: str
    reason: str
    trigger: str | None = None
    stage: int | None = None
    zone: str | None = None
    track_ids: list[int] = field(default_factory=list)
    incident_id: str | None = None


@dataclass
class _OutputState:
    out: Output | None
    cfg: DeterrentConfig
    on_since: float | None = None
    off_at: float | None = None
    last_off: float = float("-inf")
    history: list[tuple[float, float]] = field(default_factory=list)  # closed on-intervals
    cause: _Cause | None = None
    activation: int = 0
    error: str | None = None

    def on_time(self, now: float, window: float) -> float:
        """Seconds on within (now - window, now]."""
        t0 = now - window
        self.history = [(a, b) for a, b in self.history if b > t0]
        total = sum(b - max(a, t0) for a, b in self.history)
        if self.on_since is not None:
            total += now - max(self.on_since, t0)
        return total


@dataclass
class _Escalation:
    rule: str
    policy: EscalationPolicy
    started: float
    events: set[str]
    cause: _Cause
    next_stage: int = 0


def make_record(
    action: str,
    output: str | None,
    dcfg: DeterrentConfig | None,
    cause: _Cause,
    now: float,
    frame: int,
    *,
    reason: str,
    severity: Severity = Severity.NOTICE,
    extra: dict[str, Any] | None = None,
) -> Event:
    explain: dict[str, Any] = {"action": action, "reason": reason}
    if output is not None and dcfg is not None:
        explain.update(output=output, kind=dcfg.kind)
        if dcfg.pin is not None:
            explain["pin"] = f"GPIO{parse_pin(dcfg.pin)}"
    if cause.stage is not None:
        explain["stage"] = cause.stage
    if cause.trigger is not None:
        explain["trigger_event"] = cause.trigger
    explain.update(extra or {})
    return Event.instant(
        now,
        frame,
        type="deterrent",
        rule=cause.rule,
        severity=severity,
        zone=cause.zone,
        track_ids=list(cause.track_ids),
        explain=explain,
        incident_id=cause.incident_id,
    )
