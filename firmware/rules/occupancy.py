"""Zone occupancy rules: crowding (at least N people for at least T), after-hours
intrusion (anyone in an armed zone while the store is closed), and footfall (directional
line crossings, dwell and queue length per zone, summed per interval)."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from firmware.events.records import Severity
from firmware.rules.base import FrameContext, Rule, RuleEnv
from firmware.rules.config import CrowdingRule, FootfallRule, IntrusionRule, ScheduleConfig
from firmware.rules.situations import Situations
from firmware.rules.zones import foot_points


def store_closed(schedule: ScheduleConfig, when: datetime) -> bool:
    """Whether the store is closed at this local time."""
    if schedule.always_closed:
        return True
    if schedule.open_time is None or schedule.close_time is None:
        return False
    now = when.hour * 60 + when.minute
    o, c = schedule.minutes(schedule.open_time), schedule.minutes(schedule.close_time)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[when.weekday()]
    prev_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(when.weekday() - 1) % 7]
    if o <= c:
        return not (day in schedule.open_days and o <= now < c)
    # Open past midnight: open from o today, or until c on the morning after an open day.
    return not (
        (day in schedule.open_days and now >= o) or (prev_day in schedule.open_days and now < c)
    )


class Crowding(Rule):
    name = "crowding"
    cfg: CrowdingRule

    def __init__(self, cfg: CrowdingRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.cols = env.zones.select(cfg.zones, None)
        self.col_list = self.cols.tolist()
        self.since: dict[int, tuple[float, int]] = {}

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if len(self.cols) == 0:
            return
        cfg = self.cfg
        member = ctx.member(self.cols)
        counts = ctx.occupancy(self.cols).tolist()
        for j, z in enumerate(self.col_list):
            n = counts[j]
            if n < cfg.min_people:
                if self.since:
                    self.since.pop(z, None)
                continue
            since_t, since_f = self.since.setdefault(z, (ctx.t, ctx.frame))
            if ctx.t - since_t < cfg.min_duration_s - 1e-9:
                continue
            sits.observe(
                (self.name, z),
                ctx.t,
                ctx.frame,
                type="crowding",
                rule=self.name,
                severity=Severity.WARN if n >= 2 * cfg.min_people else Severity.NOTICE,
                zone=self.env.zones.names[z],
                track_ids=[int(x) for x in ctx.p_ids[member[:, j]]],
                grace_s=cfg.end_grace_s,
                start_time=since_t,
                start_frame=since_f,
                explain={
                    "people": n,
                    "duration_s": ctx.t - since_t,
                    "min_people": cfg.min_people,
                    "min_duration_s": cfg.min_duration_s,
                },
            )


class Intrusion(Rule):
    name = "intrusion"
    cfg: IntrusionRule

    def __init__(self, cfg: IntrusionRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.cols = env.zones.select(cfg.zones, None)
        self._minute: tuple[int, ...] | None = None
        self._is_closed = False
        self._second: int | None = None
        self._now: datetime | None = None
        self._now_text = ""

    def _when(self, t: float) -> datetime:
        """Local wall-clock time, looked up once per second of stream time."""
        sec = int(t)
        if sec != self._second or self._now is None:
            self._second = sec
            self._now = self.env.clock(t)
            self._now_text = self._now.strftime("%Y-%m-%d %H:%M")
        return self._now

    def _closed(self, when: datetime) -> bool:
        """store_closed, evaluated once per minute."""
        minute = (when.year, when.month, when.day, when.hour, when.minute)
        if minute != self._minute:
            self._minute = minute
            self._is_closed = store_closed(self.env.schedule, when)
        return self._is_closed

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        env = self.env
        if len(self.cols) == 0 or len(ctx.p_slots) == 0 or env.unit_armed is False:
            return
        cols = self.cols[env.zones.armed[self.cols]]
        if len(cols) == 0:
            return
        when = self._when(ctx.t)
        if env.unit_armed is None and not self._closed(when):
            return
        dwell = ctx.dwell().take(cols, axis=1)
        inside = dwell >= max(self.cfg.min_duration_s, 1e-9)
        # Zone by zone, the people inside: one nonzero over (zone, person), then slices.
        counts = inside.sum(axis=0).tolist()
        if not any(counts):
            return
        ids = ctx.p_ids[np.nonzero(inside.T)[1]].tolist()
        longest = dwell.max(axis=0).tolist()
        e = 0
        for j, n in enumerate(counts):
            if n == 0:
                continue
            a, e = e, e + n
            z = int(cols[j])
            sits.observe(
                (self.name, z),
                ctx.t,
                ctx.frame,
                type="intrusion",
                rule=self.name,
                severity=Severity.ALERT,
                zone=env.zones.names[z],
                track_ids=ids[a:e],
                grace_s=self.cfg.end_grace_s,
                explain={
                    "people": e - a,
                    "longest_s": longest[j],
                    "local_time": self._now_text,
                    "armed_by": "hub" if env.unit_armed else "schedule",
                    "open_time": env.schedule.open_time,
                    "close_time": env.schedule.close_time,
                    "min_duration_s": self.cfg.min_duration_s,
                },
            )


class Footfall(Rule):
    name = "footfall"
    cfg: FootfallRule

    def __init__(self, cfg: FootfallRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.line_cols = env.lines.select(cfg.lines)
        self.zone_cols = env.zones.select(cfg.zones, None)
        self._all_lines = len(self.line_cols) == len(env.lines) and bool(
            (self.line_cols == np.arange(len(env.lines))).all()
        )
        env.mem.alloc("ff_side", (len(self.line_cols),), np.float64, np.nan)
        self.period_start: float | None = None
        self.period_frame = 0
        self._reset()

    def _crossings(self, ctx: FrameContext) -> np.ndarray | None:
        """(P,L) +1 in, -1 out, 0 none since each person's previous frame; None when nobody
        changed side of a line (the common case). Only the side of each line is kept per
        person; the exact segment test runs for side changes only."""
        lines, m = self.env.lines, self.env.mem
        side = lines.side(ctx.p_feet)
        if not self._all_lines:
            side = side.take(self.line_cols, axis=1)
        before = m.ff_side.take(ctx.p_slots, axis=0)  # take: faster row gather
        m.ff_side[ctx.p_slots] = side
        # A side is never NaN; a NaN ``before`` (first sight) is no change.
        flipped = np.where(side < 0, before >= 0, before < 0)
        if not flipped.any():
            return None
        prev_box = m.back_boxes(ctx.p_slots, 1)
        return lines.crossings(foot_points(prev_box), ctx.p_feet)[:, self.line_cols]

    def _count(self, ctx: FrameContext, cross: np.ndarray, sits: Situations) -> None:
        """Add this frame's crossings to the counts (and send them as events if asked)."""
        self.counts[:, 0] += (cross > 0).sum(axis=0)
        self.counts[:, 1] += (cross < 0).sum(axis=0)
        if not self.cfg.crossing_events:
            return
        for i, j in zip(*np.nonzero(cross), strict=True):
            ln = int(self.line_cols[j])
            sits.instant(
                ctx.t,
                ctx.frame,
                type="line_crossing",
                rule=self.name,
                severity=Severity.INFO,
                zone=self.env.lines.names[ln],
                track_ids=[int(ctx.p_ids[i])],
                explain={"direction": "in" if cross[i, j] > 0 else "out"},
            )

    def _reset(self) -> None:
        nl, nz = len(self.line_cols), len(self.zone_cols)
        self.counts = np.zeros((nl, 2), np.int64)  # in, out
        self.visits = np.zeros(nz, np.int64)
        self.dwell_sum = np.zeros(nz)
        self.occ_sum = np.zeros(nz)
        self.occ_max = np.zeros(nz, np.int64)
        self.frames = 0

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if len(self.line_cols) == 0 and len(self.zone_cols) == 0:
            return
        env, t = self.env, ctx.t
        if self.period_start is None:
            self.period_start, self.period_frame = t, ctx.frame
        if len(self.line_cols) and len(ctx.p_slots):
            cross = self._crossings(ctx)
            if cross is not None:
                self._count(ctx, cross, sits)
        if len(self.zone_cols):
            occ = ctx.occupancy(self.zone_cols)
            self.occ_sum += occ
            self.occ_max = np.maximum(self.occ_max, occ)
            ex = (
                ctx.exited
                if len(self.zone_cols) == len(env.zones)
                else ctx.exited[:, self.zone_cols]
            )
            if ex.any():
                self.visits += ex.sum(axis=0)
                # Visit length: from the entry to the first frame outside.
                visit = env.mem.z_last_visit_s[ctx.p_slots][:, self.zone_cols]
                self.dwell_sum += np.where(ex, visit, 0).sum(axis=0)
        self.frames += 1
        if t - self.period_start >= self.cfg.interval_s:
            self.flush(t, ctx.frame, sits)

    def flush(self, t: float, frame: int, sits: Situations) -> None:
        """Send the summary of the period that ends now."""
        if self.period_start is None or self.frames == 0:
            return
        env = self.env
        lines = {
            env.lines.names[int(c)]: {"in": int(self.counts[k, 0]), "out": int(self.counts[k, 1])}
            for k, c in enumerate(self.line_cols)
        }
        zones = {
            env.zones.names[int(c)]: {
                "visits_ended": int(self.visits[k]),
                "mean_dwell_s": float(self.dwell_sum[k] / self.visits[k])
                if self.visits[k]
                else None,
                "mean_people": float(self.occ_sum[k] / self.frames),
                "max_people": int(self.occ_max[k]),
            }
            for k, c in enumerate(self.zone_cols)
        }
        sits.instant(
            t,
            frame,
            type="footfall",
            rule=self.name,
            severity=Severity.INFO,
            explain={
                "period_start_s": self.period_start,
                "period_s": t - self.period_start,
                "start_frame": self.period_frame,
                "lines": lines,
                "zones": zones,
            },
        )
        self.period_start, self.period_frame = t, frame
        self._reset()
