"""Motion rules: running (speed in the person's own heights per second, so no camera
calibration is needed) and grab-and-run (a dash towards an exit soon after dwelling at a
high-value zone)."""

from __future__ import annotations

import numpy as np

from firmware.events.records import Severity
from firmware.rules.base import FrameContext, Rule, RuleEnv, inside_image
from firmware.rules.config import GrabAndRunRule, RunningRule
from firmware.rules.situations import Situations
from firmware.rules.zones import exit_targets

MOTION_WINDOW_S = 0.6  # speed window of the rules that only need a speed


def _steady(mem, slots: np.ndarray, n: int) -> np.ndarray:
    """False where one frame's step makes up most of the window's displacement: a jump of
    the box (a track passing to another person, a detector glitch), not a run."""
    boxes, _ = mem.window(slots, n)
    c = (boxes[..., :2] + boxes[..., 2:]) * 0.5
    steps = np.hypot(*np.moveaxis(np.diff(c, axis=1), -1, 0))  # (S,n-1)
    total = np.hypot(*(c[:, -1] - c[:, 0]).T)
    return np.nanmax(steps, axis=1) <= 0.5 * total


class Running(Rule):
    name = "running"
    cfg: RunningRule

    def __init__(self, cfg: RunningRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.n = max(2, int(round(cfg.window_s * env.fps)) + 1)
        env.mem.alloc("run_since", (), np.float64, np.nan)
        env.mem.alloc("run_since_frame", (), np.int64, -1)
        env.mem.alloc("run_peak", (), np.float64, 0.0)

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if len(ctx.p_slots) == 0:
            return
        cfg, mem = self.cfg, self.env.mem
        s = ctx.p_slots
        v, h = ctx.speeds(self.n)
        speed = np.hypot(v[:, 0], v[:, 1])
        # Someone in (or just out of) a fight is fleeing or chasing at a lower speed.
        fighting = ctx.t - mem.fight_t[s] <= cfg.after_fight_s if hasattr(mem, "fight_t") else False
        limit = np.where(fighting, cfg.after_fight_min_speed, cfg.min_speed)
        # Fast, a whole window seen (no start-up transients), and the person wholly in view
        # now and at the window's start (read only for the fast ones).
        fast = (
            (speed >= limit)
            & (h >= cfg.min_height_px)
            & (mem.hist_n[s] >= self.n)
            & ctx.inside(self.env.frame_size)
        )
        if fast.any():
            first = mem.back_boxes(s[fast], self.n - 1)
            fast[fast] = inside_image(first, self.env.frame_size)
        if fast.any():
            fast[fast] = _steady(mem, s[fast], self.n)
        since = mem.run_since[s]
        if not fast.any():
            if not np.isnan(since).all():
                mem.run_since[s] = np.nan
                mem.run_peak[s] = 0.0
            return
        new = fast & np.isnan(since)
        mem.run_since[s] = np.where(fast, np.where(new, ctx.t, since), np.nan)
        mem.run_since_frame[s] = np.where(new, ctx.frame, mem.run_since_frame[s])
        mem.run_peak[s] = np.where(fast, np.fmax(mem.run_peak[s], speed), 0.0)
        held = fast & (ctx.t - mem.run_since[s] >= cfg.min_duration_s - 1e-9)
        for i in np.nonzero(held)[0].tolist():
            tid = int(ctx.p_ids[i])
            slot = s[i]
            sits.observe(
                (self.name, tid),
                ctx.t,
                ctx.frame,
                type="running",
                rule=self.name,
                severity=Severity.WARN,
                track_ids=[tid],
                grace_s=cfg.end_grace_s,
                start_time=float(mem.run_since[slot]),
                start_frame=int(mem.run_since_frame[slot]),
                explain={
                    "speed_heights_per_s": float(speed[i]),
                    "peak_speed_heights_per_s": float(mem.run_peak[slot]),
                    "person_height_px": float(h[i]),
                    "min_speed": float(limit[i]),
                    "after_fight": bool(np.asarray(fighting)[i]) if np.ndim(fighting) else False,
                    "window_s": cfg.window_s,
                    "min_duration_s": cfg.min_duration_s,
                },
            )


class GrabAndRun(Rule):
    name = "grab_and_run"
    cfg: GrabAndRunRule

    def __init__(self, cfg: GrabAndRunRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.cols = env.zones.select(cfg.zones, None if cfg.zones else ("high_value",))
        self.exits = exit_targets(env.zones, env.lines, cfg.exits)
        self.n = max(2, int(round(MOTION_WINDOW_S * env.fps)) + 1)
        env.mem.alloc("gr_left_t", (), np.float64, np.nan)  # last time at a HV zone, dwelt enough
        env.mem.alloc("gr_zone", (), np.int32, -1)
        env.mem.alloc("gr_dwell", (), np.float64, 0.0)

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if len(self.cols) == 0 or len(ctx.p_slots) == 0:
            return
        cfg, mem, zones = self.cfg, self.env.mem, self.env.zones
        s = ctx.p_slots
        dwell = ctx.dwell().take(self.cols, axis=1)
        at = np.nonzero(dwell.max(axis=1) >= cfg.min_dwell_s)[0]
        if len(at):  # at a high-value zone long enough: remember where and when
            best = np.argmax(dwell[at], axis=1)
            mem.gr_left_t[s[at]] = ctx.t
            mem.gr_zone[s[at]] = self.cols[best]
            mem.gr_dwell[s[at]] = dwell[at, best]
        left_t = mem.gr_left_t[s]
        recent = ctx.t - left_t <= cfg.window_s  # NaN (never dwelt): False
        if not recent.any():
            return
        recent &= ~ctx.member(self.cols).any(axis=1)
        if not recent.any():
            return
        v, h = ctx.speeds(self.n)
        speed = np.hypot(v[:, 0], v[:, 1])
        cand = np.nonzero(recent & (speed >= cfg.min_speed) & (mem.hist_n[s] >= self.n))[0]
        if len(cand) == 0:
            return
        cos = np.full(len(cand), np.nan)
        if len(self.exits):
            # Direction of the motion against the direction to the nearest exit.
            to_exit = self.exits[None, :, :] - ctx.p_feet[cand, None, :]  # (C,K,2)
            dist = np.hypot(to_exit[..., 0], to_exit[..., 1])
            k = np.argmin(dist, axis=1)
            rows = np.arange(len(cand))
            nearest = to_exit[rows, k]
            cos = (nearest * v[cand]).sum(axis=1) / np.maximum(dist[rows, k] * speed[cand], 1e-9)
            keep = cos >= cfg.towards_cos
            cand, cos = cand[keep], cos[keep]
        for i, c in zip(cand.tolist(), cos.tolist(), strict=True):
            tid = int(ctx.p_ids[i])
            z = int(mem.gr_zone[s[i]])
            sits.observe(
                (self.name, tid),
                ctx.t,
                ctx.frame,
                type="grab_and_run",
                rule=self.name,
                severity=Severity.ALERT,
                zone=zones.names[z],
                track_ids=[tid],
                grace_s=2.0,
                explain={
                    "dwell_s": float(mem.gr_dwell[s[i]]),
                    "seconds_since_zone": float(ctx.t - mem.gr_left_t[s[i]]),
                    "speed_heights_per_s": float(speed[i]),
                    "towards_exit_cos": None if np.isnan(c) else c,
                    "min_dwell_s": cfg.min_dwell_s,
                    "window_s": cfg.window_s,
                    "min_speed": cfg.min_speed,
                    "towards_cos": cfg.towards_cos,
                },
            )
