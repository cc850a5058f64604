"""Rules that fuse store-system inputs with what the camera sees: an EAS alarm with a person
at the gate (``eas_exit``), a refund/void/no-sale with no customer (``till_unattended``), a
fire exit open (``fire_exit_open``), a panic button (``panic``). Every input is also reported
as it is (``store_input``, ``till``), and a misbehaving input as ``health``.

Inputs reach the engine as records on the frame clock (``FrameContext.inputs``); decisions that
need the seconds after an input (was anyone there?) wait for them, so the same events come
from a live unit and from ``vigil-eval behave --inputs``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from firmware.events.records import Severity
from firmware.inputs.records import ContactChange, InputFault, TillTransaction
from firmware.rules.base import FrameContext, Rule, RuleEnv
from firmware.rules.config import EasExitRule, FireExitOpenRule, PanicRule, TillUnattendedRule
from firmware.rules.situations import Situations


class InputRecords(Rule):
    """Reports every input record as an event of its own (no config: always on)."""

    name = "inputs"

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        for r in ctx.inputs:
            if isinstance(r, ContactChange):
                sits.instant(
                    r.t,
                    ctx.frame,
                    type="store_input",
                    rule="inputs",
                    severity=Severity.INFO,
                    zone=r.zone,
                    explain={
                        "input": r.input,
                        "kind": r.kind,
                        "state": "active" if r.active else "inactive",
                    },
                )
            elif isinstance(r, TillTransaction):
                sits.instant(
                    r.t,
                    ctx.frame,
                    type="till",
                    rule="till",
                    severity=Severity.INFO,
                    zone=self.env.till.zone if self.env.till is not None else None,
                    explain=_transaction(r),
                )
            elif isinstance(r, InputFault):
                sits.instant(
                    r.t,
                    ctx.frame,
                    type="health",
                    rule=r.code,
                    severity=Severity.NOTICE,
                    explain={"code": r.code, "detail": r.detail, "input": r.input},
                )


def _transaction(r: TillTransaction) -> dict[str, object]:
    return {
        "input": r.input,
        "transaction": r.kind,
        "till": r.till,
        "amount": r.amount,
        "cashier": r.cashier,
    }


class _ZoneWindow:
    """Who was in one zone over the last seconds: (t, ids in the zone, ids that left it)."""

    def __init__(self, span_s: float):
        self.span_s = span_s
        self.rows: deque[tuple[float, np.ndarray, np.ndarray]] = deque()

    def push(self, ctx: FrameContext, col: int) -> None:
        if len(ctx.p_ids):
            inside = ctx.member()[:, col]
            left = ctx.exited[:, col]
            if inside.any() or left.any():
                self.rows.append((ctx.t, ctx.p_ids[inside], ctx.p_ids[left]))
        while self.rows and self.rows[0][0] < ctx.t - self.span_s:
            self.rows.popleft()

    def seen(self, t0: float, t1: float) -> list[tuple[float, np.ndarray, np.ndarray]]:
        return [row for row in self.rows if t0 <= row[0] <= t1]


@dataclass
class _Alarm:
    t: float
    input: str
    zone: str
    col: int


class EasExit(Rule):
    """The alarm is explained by the person closest to it in time, preferring one who left
    through the zone over one only standing in it; an alarm with nobody there stays a plain
    ``store_input`` (tags set off by stock moved past the gate, a test)."""

    name = "eas_exit"
    cfg: EasExitRule

    def __init__(self, cfg: EasExitRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.windows: dict[int, _ZoneWindow] = {}
        self.gates: dict[str, int] = {}
        for name, inp in env.inputs.items():
            if inp.kind == "eas_gate" and inp.zone in env.zones.index:
                col = env.zones.index[inp.zone]
                self.gates[name] = col
                self.windows.setdefault(col, _ZoneWindow(2 * cfg.window_s))
        self.pending: list[_Alarm] = []

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if not self.gates:
            return
        for col, win in self.windows.items():
            win.push(ctx, col)
        for r in ctx.inputs:
            if isinstance(r, ContactChange) and r.active and r.input in self.gates:
                col = self.gates[r.input]
                self.pending.append(_Alarm(r.t, r.input, self.env.zones.names[col], col))
        w = self.cfg.window_s
        still: list[_Alarm] = []
        for a in self.pending:
            best = self._closest(self.windows[a.col].seen(a.t - w, a.t + w), a.t)
            if best is not None:
                seen_t, tid, how = best
                sits.instant(
                    ctx.t,
                    ctx.frame,
                    type="eas_exit",
                    rule=self.name,
                    severity=Severity.ALERT,
                    zone=a.zone,
                    track_ids=[tid],
                    explain={
                        "input": a.input,
                        "track": tid,
                        "seen": how,
                        "dt_s": round(seen_t - a.t, 3),
                        "alarm_t": a.t,
                        "window_s": w,
                    },
                )
            elif ctx.t <= a.t + w:
                still.append(a)
        self.pending = still

    @staticmethod
    def _closest(rows, t: float) -> tuple[float, int, str] | None:
        best: tuple[int, float, float, int, str] | None = None  # (rank, |dt|, t, id, how)
        for rt, inside, left in rows:
            for ids, rank, how in ((left, 0, "left through zone"), (inside, 1, "in zone")):
                for tid in ids.tolist():
                    cand = (rank, abs(rt - t), rt, int(tid), how)
                    if best is None or cand[:2] < best[:2]:
                        best = cand
        return None if best is None else (best[2], best[3], best[4])


class TillUnattended(Rule):
    """Decided ``window_s`` after the transaction, once the seconds around it have been seen."""

    name = "till_unattended"
    cfg: TillUnattendedRule

    def __init__(self, cfg: TillUnattendedRule, env: RuleEnv):
        super().__init__(cfg, env)
        till = env.till
        self.col = env.zones.index.get(till.customer_zone) if till is not None else None
        self.staff_col = env.zones.index.get(till.zone) if till is not None else None
        self.window = _ZoneWindow(2 * cfg.window_s)
        self.pending: list[TillTransaction] = []

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if self.col is None:
            return
        self.window.push(ctx, self.col)
        kinds = set(self.cfg.transactions)
        self.pending += [
            r for r in ctx.inputs if isinstance(r, TillTransaction) and r.kind in kinds
        ]
        due = [r for r in self.pending if ctx.t >= r.t + self.cfg.window_s]
        self.pending = [r for r in self.pending if ctx.t < r.t + self.cfg.window_s]
        if not due:
            return
        staff = 0
        if self.staff_col is not None and len(ctx.p_ids):
            staff = int(ctx.member()[:, self.staff_col].sum())
        for r in due:
            self._decide(r, ctx.t, ctx.frame, sits, staff)

    def _decide(
        self, r: TillTransaction, t: float, frame: int, sits: Situations, staff: int | None
    ) -> None:
        w = self.cfg.window_s
        rows = self.window.seen(r.t - w, r.t + w)
        if any(len(inside) for _, inside, _ in rows):
            return
        till = self.env.till
        sits.instant(
            t,
            frame,
            type="till_unattended",
            rule=self.name,
            severity=Severity.WARN,
            zone=till.zone if till is not None else None,
            explain={
                **_transaction(r),
                "transaction_t": r.t,
                "customer_zone": till.customer_zone if till is not None else None,
                "customers_seen": 0,
                "staff_in_zone": staff,
                "window_s": w,
            },
        )

    def flush(self, t: float, frame: int, sits: Situations) -> None:
        """End of stream: decide what is pending on what was seen (fewer seconds after it)."""
        for r in self.pending:
            self._decide(r, t, frame, sits, None)
        self.pending = []


class _ContactSituation(Rule):
    """A situation that lasts while a contact input of one kind is active."""

    kind: str

    def __init__(self, cfg, env: RuleEnv):
        super().__init__(cfg, env)
        self.watched = {n for n, i in env.inputs.items() if i.kind == self.kind}
        self.active: dict[str, float] = {}  # input -> since

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if not self.watched:
            return
        for r in ctx.inputs:
            if isinstance(r, ContactChange) and r.input in self.watched:
                if r.active:
                    self.active.setdefault(r.input, r.t)
                else:
                    self.active.pop(r.input, None)
        for name, since in self.active.items():
            inp = self.env.inputs[name]
            col = self.env.zones.index.get(inp.zone) if inp.zone else None
            people: list[int] = []
            if col is not None and len(ctx.p_ids):
                people = ctx.p_ids[ctx.member()[:, col]].tolist()
            open_s = max(ctx.t - since, 0.0)
            sits.observe(
                (self.name, name),
                ctx.t,
                ctx.frame,
                type=self.name,
                rule=self.name,
                severity=self.severity(open_s),
                zone=inp.zone,
                track_ids=people,
                grace_s=self.cfg.end_grace_s,
                start_time=since,
                explain={
                    "input": name,
                    "active_s": round(open_s, 2),
                    "people_in_zone": len(people),
                    **self.thresholds(),
                },
            )

    def severity(self, open_s: float) -> Severity:
        return Severity.ALERT

    def thresholds(self) -> dict[str, float]:
        return {}


class FireExitOpen(_ContactSituation):
    name = "fire_exit_open"
    kind = "fire_exit"
    cfg: FireExitOpenRule

    def severity(self, open_s: float) -> Severity:
        return Severity.ALERT if open_s >= self.cfg.alert_after_s else Severity.WARN

    def thresholds(self) -> dict[str, float]:
        return {"alert_after_s": self.cfg.alert_after_s}


class Panic(_ContactSituation):
    name = "panic"
    kind = "panic"
    cfg: PanicRule
