"""The deterrent controller: rule events -> escalation stages -> outputs, within safety limits.

The frame loop calls ``on_event`` for each rule event and ``tick`` every frame, both with the
source clock's ``now`` (seconds). Every actuation, and every actuation held back (mute,
quiet hours, cooldown, safety limit), comes back as a ``deterrent`` event. A wall-clock
backstop timer cuts any output left on past ``max_on_s`` even if the loop stops ticking.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.deter.config import (
    EscalationPolicy,
    EscalationStage,
    in_windows,
    quiet_windows,
)
from firmware.deter.outputs import build_output, parse_pin
from firmware.deter.selftest import pulse_and_read
from firmware.deter.state import _Cause, _Escalation, _OutputState, make_record
from firmware.events.records import Event, EventPhase, Severity

if TYPE_CHECKING:
    from firmware.config.schema import VigilConfig

log = logging.getLogger(__name__)


class DeterrentController:
    """Drives the outputs of ``cfg.deterrents`` from rule events, per the escalation policies."""

    def __init__(
        self,
        cfg: VigilConfig,
        pin_factory=None,
        *,
        wall_clock: Callable[[], datetime] | None = None,
        base_dir: Path | None = None,
        backstop: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock``: the source clock (seconds) for commands that arrive between frames
        (mute button, self-test); without one, the time of the last event or tick."""
        self.cfg = cfg
        self._clock = clock
        self.policy_cfg = cfg.deterrence
        self._lock = threading.RLock()
        self._tz = cfg.site.timezone
        self._wall_clock = wall_clock or self._local_now
        self._quiet = quiet_windows(self.policy_cfg.quiet_hours)
        self._backstop_on = backstop
        self._timers: dict[str, threading.Timer] = {}
        self._pending: list[Event] = []
        self._frame = 0
        self._last_now: float | None = None
        self.muted_until = float("-inf")
        self.mute_source: str | None = None
        self._button_pressed = threading.Event()
        self.outputs: dict[str, _OutputState] = {}
        for name, dcfg in cfg.deterrents.items():
            try:
                out = build_output(name, dcfg, pin_factory, base_dir)
                self.outputs[name] = _OutputState(out, dcfg)
            except Exception as e:  # a missing siren must not stop the unit
                log.error("deterrent %s unavailable: %s", name, e)
                self.outputs[name] = _OutputState(None, dcfg, error=str(e))
        self.button = None
        if self.policy_cfg.mute_button is not None:
            from gpiozero import Button

            self.button = Button(
                f"GPIO{parse_pin(self.policy_cfg.mute_button)}",
                pull_up=True,
                bounce_time=0.05,
                pin_factory=pin_factory,
            )
            self.button.when_pressed = lambda *_: self._button_pressed.set()
        self._seen: set[str] = set()  # rule events that started (or were refused) an escalation
        self.cooling_until: dict[str, float] = {}
        self.escalations: dict[str, _Escalation] = {}

    # ----------------------------------------------------------------- public API

    def on_event(self, event: Event, now: float | None = None) -> list[Event]:
        """Start, follow or end the escalation of the rule behind a rule event (``now``:
        the source time, by default the event's own)."""
        if event.type == "deterrent":
            return []
        now = event.time if now is None else now
        with self._lock:
            self._frame = event.frame
            out = self._clock_check(now)
            policy = self._policy_for(event.rule)
            if policy is None:
                return out
            esc = self.escalations.get(event.rule)
            if self._starts(event, esc):
                self._seen.add(event.event_id)
                if len(self._seen) > 10000:
                    self._seen.clear()
                if esc is not None:
                    esc.events.add(event.event_id)
                else:
                    cool = self.cooling_until.get(event.rule, float("-inf"))
                    cause = _Cause(
                        event.rule,
                        f"{event.rule} started",
                        event.event_id,
                        zone=event.zone,
                        track_ids=list(event.track_ids),
                        incident_id=event.incident_id,
                    )
                    if now < cool:
                        out.append(
                            self._record(
                                "suppressed",
                                None,
                                cause,
                                now,
                                reason="rule cooldown",
                                extra={"until": cool},
                            )
                        )
                        return out
                    esc = _Escalation(event.rule, policy, now, {event.event_id}, cause)
                    self.escalations[event.rule] = esc
                out += self._advance(esc, now)
                if event.phase == EventPhase.INSTANT:  # over at once; its outputs run their on_s
                    out += self._end_escalation(esc, event.event_id, now, switch_off=False)
            elif esc is not None and event.event_id in esc.events:
                esc.cause.track_ids = list(event.track_ids) or esc.cause.track_ids
                if event.phase == EventPhase.END:
                    out += self._end_escalation(esc, event.event_id, now)
            return out

    def tick(self, now: float, frame: int | None = None) -> list[Event]:
        """Advance escalations, switch outputs off after on_s, enforce safety limits."""
        with self._lock:
            if frame is not None:
                self._frame = frame
            out = self._clock_check(now)
            out += self._pending
            self._pending = []
            if self._button_pressed.is_set():
                self._button_pressed.clear()
                out += self.mute(self.policy_cfg.mute_minutes, now, source="button")
            for esc in list(self.escalations.values()):
                out += self._advance(esc, now)
            for name, st in self.outputs.items():
                if st.on_since is None:
                    continue
                budget = st.cfg.max_duty * st.cfg.duty_window_s
                if st.off_at is not None and now >= st.off_at:
                    out += self._switch_off(name, now, "on_s elapsed")
                elif now - st.on_since >= st.cfg.max_on_s:
                    out += self._switch_off(name, now, "safety: max_on_s reached", safety=True)
                elif st.on_time(now, st.cfg.duty_window_s) >= budget:
                    out += self._switch_off(name, now, "safety: duty cycle limit", safety=True)
            return out

    def mute(self, minutes: float, now: float, source: str = "hub") -> list[Event]:
        """Silence every output for ``minutes`` (0 unmutes); outputs now on switch off."""
        with self._lock:
            out: list[Event] = []
            cause = _Cause("mute", f"mute by {source}")
            if minutes <= 0:
                self.muted_until = float("-inf")
                self.mute_source = None
                out.append(self._record("unmuted", None, cause, now, reason=f"unmute by {source}"))
                return out
            self.muted_until = now + minutes * 60.0
            self.mute_source = source
            out.append(
                self._record(
                    "muted",
                    None,
                    cause,
                    now,
                    reason=f"mute by {source}",
                    extra={"minutes": minutes, "until": self.muted_until},
                )
            )
            for name, st in self.outputs.items():
                if st.on_since is not None:
                    out += self._switch_off(name, now, f"muted by {source}")
            return out

    def mute_from(self, minutes: float, source: str) -> bool:
        """Mute from another thread (hub, console); the records come out of the next ``tick``."""
        with self._lock:
            now = self.now()
            self._pending += self.mute(minutes, now, source=source)
            return self.is_muted(now)

    def test(self, name: str, now: float, on_s: float | None = None) -> list[Event]:
        """Switch one output on for a test (ignores mute, quiet hours and cooldown, not safety)."""
        with self._lock:
            if name not in self.outputs:
                raise KeyError(
                    f"no deterrent named {name!r} (have: {', '.join(self.outputs) or 'none'})"
                )
            return self._switch_on(name, now, on_s, _Cause("test", "test"), test=True)

    def now(self) -> float:
        """The controller's clock: the source clock when given, else the last time seen."""
        if self._clock is not None:
            return self._clock()
        return self._last_now if self._last_now is not None else 0.0

    def is_muted(self, now: float) -> bool:
        return now < self.muted_until

    def is_quiet(self) -> bool:
        if not self._quiet:
            return False
        t = self._wall_clock()
        return in_windows(t.hour * 60 + t.minute, self._quiet)

    def state(self, now: float) -> dict[str, Any]:
        """A plain snapshot for status/diagnostics."""
        with self._lock:
            return {
                "muted": self.is_muted(now),
                "muted_until": self.muted_until if self.is_muted(now) else None,
                "quiet_hours": self.is_quiet(),
                "escalations": {
                    r: {"stage": e.next_stage, "since": e.started, "events": len(e.events)}
                    for r, e in self.escalations.items()
                },
                "outputs": {
                    n: {
                        "kind": st.cfg.kind,
                        "pin": st.cfg.pin,
                        "on": st.on_since is not None,
                        "error": st.error,
                        "duty_used_s": round(st.on_time(now, st.cfg.duty_window_s), 3),
                    }
                    for n, st in self.outputs.items()
                },
            }

    def self_test(self, name: str, pulse_s: float = 0.2) -> dict[str, Any]:
        """Pulse one output and read it back; {ok, detail, hint}. Recorded as deterrent events."""
        with self._lock:
            st = self.outputs[name]
            if st.out is not None and st.on_since is None:
                cause = _Cause("selftest", "self-test pulse")
                rec = self._record("selftest", name, cause, self.now(), reason="self-test pulse")
                self._pending.append(rec)
            return pulse_and_read(name, st, pulse_s)

    def read_back(self, name: str) -> bool | None:
        st = self.outputs[name]
        return None if st.out is None else st.out.read_back()

    def close(self) -> None:
        """Switch everything off and release the pins."""
        with self._lock:
            for t in self._timers.values():
                t.cancel()
            self._timers.clear()
            for st in self.outputs.values():
                if st.out is None:
                    continue
                try:
                    st.out.off()
                except Exception as e:
                    log.error("deterrent %s: switching off failed: %s", st.out.name, e)
                finally:
                    st.out.close()
                st.on_since = None
            if self.button is not None:
                self.button.close()
                self.button = None

    def __enter__(self) -> DeterrentController:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- internals

    def _local_now(self) -> datetime:
        from zoneinfo import ZoneInfo

        try:
            return datetime.now(ZoneInfo(self._tz))
        except Exception:
            return datetime.now().astimezone()

    def _starts(self, event: Event, esc: _Escalation | None) -> bool:
        """Whether this rule event starts (or joins) an escalation: at its start, or, for a
        rule's own ``deterrent``, when it first reaches the rule's ``act_at`` stage."""
        if event.event_id in self._seen or (esc is not None and event.event_id in esc.events):
            return False
        if event.phase not in (EventPhase.START, EventPhase.INSTANT, EventPhase.UPDATE):
            return False
        act_at = None
        if event.rule not in self.policy_cfg.escalation:
            act_at = getattr(getattr(self.cfg.rules, event.rule, None), "act_at", None)
        if act_at is None:
            return event.phase != EventPhase.UPDATE
        return event.severity >= Severity[str(act_at).upper()]

    def _policy_for(self, rule: str) -> EscalationPolicy | None:
        """The rule's escalation policy, or a one-stage policy from ``rules.<rule>.deterrent``."""
        if rule in self.policy_cfg.escalation:
            return self.policy_cfg.escalation[rule]
        rule_cfg = getattr(self.cfg.rules, rule, None)
        target = getattr(rule_cfg, "deterrent", None)
        if not target:
            return None
        return EscalationPolicy(stages=[EscalationStage(after_s=0, outputs=[target])], cooldown_s=0)

    def _clock_check(self, now: float) -> list[Event]:
        """A source clock that jumps back (a looped clip) resets timings, outputs off."""
        out: list[Event] = []
        if self._last_now is not None and now < self._last_now - 1.0:
            log.info("deterrents: clock went back %.1f s; resetting", self._last_now - now)
            for name, st in self.outputs.items():
                if st.on_since is not None:
                    out += self._switch_off(name, self._last_now, "source clock reset")
                st.history.clear()
                st.last_off = float("-inf")
            self.escalations.clear()
            self.cooling_until.clear()
            if self.muted_until != float("-inf"):
                self.muted_until = now + max(0.0, self.muted_until - self._last_now)
        self._last_now = now
        return out

    def _advance(self, esc: _Escalation, now: float) -> list[Event]:
        out: list[Event] = []
        stages = esc.policy.stages
        while esc.next_stage < len(stages) and now >= esc.started + stages[esc.next_stage].after_s:
            i = esc.next_stage
            stage = stages[i]
            esc.next_stage += 1
            cause = _Cause(
                esc.rule,
                f"{esc.rule} escalation stage {i + 1}",
                esc.cause.trigger,
                stage=i + 1,
                zone=esc.cause.zone,
                track_ids=esc.cause.track_ids,
                incident_id=esc.cause.incident_id,
            )
            for name in stage.outputs:
                out += self._switch_on(name, now, stage.on_s, cause)
            if stage.alert:
                out.append(
                    self._record(
                        "alert",
                        None,
                        cause,
                        now,
                        reason=cause.reason,
                        severity=Severity.ALERT,
                        extra={"since_s": round(now - esc.started, 3)},
                    )
                )
        return out

    def _end_escalation(
        self, esc: _Escalation, event_id: str, now: float, switch_off: bool = True
    ) -> list[Event]:
        esc.events.discard(event_id)
        if esc.events:
            return []
        del self.escalations[esc.rule]
        self.cooling_until[esc.rule] = now + esc.policy.cooldown_s
        out: list[Event] = []
        if esc.policy.off_on_end and switch_off:
            names = {n for s in esc.policy.stages for n in s.outputs}
            for name in sorted(names):
                if self.outputs.get(name) and self.outputs[name].on_since is not None:
                    out += self._switch_off(name, now, f"{esc.rule} ended")
        return out

    def _switch_on(
        self, name: str, now: float, on_s: float | None, cause: _Cause, test: bool = False
    ) -> list[Event]:
        st = self.outputs[name]
        dcfg = st.cfg
        on_s = min(on_s or dcfg.on_s, dcfg.max_on_s)
        if st.out is None:
            return [self._record("failed", name, cause, now, reason=f"unavailable: {st.error}")]
        if not test:
            if self.is_muted(now):
                return [
                    self._record(
                        "suppressed", name, cause, now, reason=f"muted by {self.mute_source}"
                    )
                ]
            if (dcfg.audible or self.policy_cfg.quiet_applies_to == "all") and self.is_quiet():
                return [self._record("suppressed", name, cause, now, reason="quiet hours")]
            if st.on_since is None and now < st.last_off + dcfg.cooldown_s:
                return [
                    self._record(
                        "suppressed",
                        name,
                        cause,
                        now,
                        reason="cooldown",
                        extra={"until": st.last_off + dcfg.cooldown_s},
                    )
                ]
        budget = dcfg.max_duty * dcfg.duty_window_s
        if st.on_time(now, dcfg.duty_window_s) >= budget:
            return [
                self._record(
                    "refused",
                    name,
                    cause,
                    now,
                    reason="safety: duty cycle limit",
                    severity=Severity.WARN,
                )
            ]
        if st.on_since is not None:
            st.off_at = max(st.off_at or now, now + on_s)
            st.cause = cause
            return [
                self._record(
                    "extend", name, cause, now, reason=cause.reason, extra={"off_at": st.off_at}
                )
            ]
        try:
            st.out.on()
        except Exception as e:
            st.error = str(e)
            log.error("deterrent %s: switching on failed: %s", name, e)
            return [
                self._record(
                    "failed",
                    name,
                    cause,
                    now,
                    reason=f"switching on failed: {e}",
                    severity=Severity.WARN,
                )
            ]
        st.on_since, st.off_at, st.cause = now, now + on_s, cause
        st.activation += 1
        self._arm_backstop(name, st)
        return [self._record("on", name, cause, now, reason=cause.reason, extra={"on_s": on_s})]

    def _switch_off(self, name: str, now: float, reason: str, safety: bool = False) -> list[Event]:
        st = self.outputs[name]
        if st.on_since is None or st.out is None:
            return []
        err = None
        try:
            st.out.off()
        except Exception as e:
            err = str(e)
            log.error("deterrent %s: switching off failed: %s", name, e)
        st.history.append((st.on_since, now))
        on_for = now - st.on_since
        st.on_since, st.off_at, st.last_off = None, None, now
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        cause = st.cause or _Cause("deterrent", reason)
        extra: dict[str, Any] = {"on_for_s": round(on_for, 3)}
        if err:
            extra["error"] = err
        return [
            self._record(
                "off",
                name,
                cause,
                now,
                reason=reason,
                severity=Severity.WARN if safety or err else Severity.NOTICE,
                extra=extra,
            )
        ]

    def _arm_backstop(self, name: str, st: _OutputState) -> None:
        if not self._backstop_on:
            return
        activation = st.activation

        def cut() -> None:
            with self._lock:
                if st.on_since is not None and st.activation == activation:
                    log.warning(
                        "deterrent %s: loop did not switch it off; safety backstop cut", name
                    )
                    now = self._last_now if self._last_now is not None else st.on_since
                    self._pending += self._switch_off(
                        name, max(now, st.on_since), "safety: backstop (loop stalled)", safety=True
                    )

        t = threading.Timer(st.cfg.max_on_s, cut)
        t.daemon = True
        t.start()
        self._timers[name] = t

    def _record(
        self, action: str, output: str | None, cause: _Cause, now: float, **kw: Any
    ) -> Event:
        cfg = self.outputs[output].cfg if output is not None else None
        return make_record(action, output, cfg, cause, now, self._frame, **kw)
