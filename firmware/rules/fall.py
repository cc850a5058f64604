"""Fall / person down: a change to a lying posture, then staying down (see FallRule)."""

from __future__ import annotations

import numpy as np

from firmware.events.records import Severity
from firmware.rules.base import FrameContext, Rule, RuleEnv, speeds
from firmware.rules.config import FallRule
from firmware.rules.situations import Situations

# COCO keypoints: shoulders 5, 6; hips 11, 12.
_SHOULDERS, _HIPS = [5, 6], [11, 12]
_MIN_KP_SCORE = 0.3
_WALKING = 0.3  # heights per second: moving, so the box shows the walking size


def torso_lying(kp: np.ndarray | None) -> np.ndarray | None:
    """(N,) bool lying / NaN-free where the torso is visible; None without keypoints.
    Returns a float array: 1 lying, 0 upright, NaN unknown."""
    if kp is None or len(kp) == 0:
        return None
    sh, hp = kp[:, _SHOULDERS], kp[:, _HIPS]
    ok = (sh[..., 2] >= _MIN_KP_SCORE).all(axis=1) & (hp[..., 2] >= _MIN_KP_SCORE).all(axis=1)
    d = sh[..., :2].mean(axis=1) - hp[..., :2].mean(axis=1)
    lying = (np.abs(d[:, 0]) > np.abs(d[:, 1])).astype(np.float64)
    return np.where(ok, lying, np.nan)


class Fall(Rule):
    name = "fall"
    cfg: FallRule

    def __init__(self, cfg: FallRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.n = max(2, int(round(0.5 * env.fps)) + 1)
        self.alpha = 1.0 / max(1.0, 1.5 * env.fps)  # walking size: EMA over ~1.5 s
        m = env.mem
        m.alloc("fall_walk_wh", (2,), np.float64, np.nan)
        m.alloc("fall_moving_t", (), np.float64, np.nan)  # last time upright or walking
        m.alloc("fall_upright_t", (), np.float64, np.nan)
        m.alloc("fall_down_t", (), np.float64, np.nan)
        m.alloc("fall_down_f", (), np.int64, -1)

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if len(ctx.p_slots) == 0:
            return
        cfg, m, t = self.cfg, self.env.mem, ctx.t
        s = ctx.p_slots
        b = ctx.p_boxes
        w = np.maximum(b[:, 2] - b[:, 0], 1.0)
        h = np.maximum(b[:, 3] - b[:, 1], 1.0)
        v, _ = speeds(m, s, self.n)
        speed = np.hypot(v[:, 0], v[:, 1])
        walking = speed >= _WALKING
        still = speed < cfg.still_speed
        upright = h / w >= cfg.upright_ratio
        pose = None
        if ctx.keypoints is not None:
            pose = torso_lying(np.asarray(ctx.keypoints)[ctx.people])
            if pose is not None:
                upright = np.where(np.isnan(pose), upright, pose == 0)
        # Walking size: an average over recent walking frames (where the box shows a
        # person on their feet), per track.
        wh = m.fall_walk_wh[s]
        cur = np.stack([w, h], axis=1)
        upd = walking[:, None] & ~np.isnan(wh)
        wh = np.where(np.isnan(wh) & walking[:, None], cur, wh)
        wh = np.where(upd, wh + self.alpha * (cur - wh), wh)
        m.fall_walk_wh[s] = wh
        m.fall_moving_t[s] = np.where(walking | upright, t, m.fall_moving_t[s])
        m.fall_upright_t[s] = np.where(upright, t, m.fall_upright_t[s])
        with np.errstate(invalid="ignore"):
            grown = still & (
                (w >= cfg.extent_growth * wh[:, 0]) | (h >= cfg.extent_growth * wh[:, 1])
            )
            # Wider than tall counts only for people once seen upright (a side view).
            flat = (w / h >= cfg.lying_ratio) & ~np.isnan(m.fall_upright_t[s])
        lying = (grown | flat) & still & ~upright
        if pose is not None:
            lying = np.where(np.isnan(pose), lying, pose == 1)
        down_t = m.fall_down_t[s]
        recent = t - m.fall_moving_t[s] <= cfg.moving_within_s
        start = lying & np.isnan(down_t) & recent
        m.fall_down_t[s] = np.where(lying, np.where(start, t, down_t), np.nan)
        m.fall_down_f[s] = np.where(start, ctx.frame, m.fall_down_f[s])
        held = lying & (t - m.fall_down_t[s] >= cfg.min_down_s - 1e-9)
        for i in np.nonzero(held)[0].tolist():
            slot = s[i]
            tid = int(ctx.p_ids[i])
            sits.observe(
                (self.name, tid),
                t,
                ctx.frame,
                type="fall",
                rule=self.name,
                severity=Severity.ALERT,
                track_ids=[tid],
                grace_s=cfg.end_grace_s,
                start_time=float(m.fall_down_t[slot]),
                start_frame=int(m.fall_down_f[slot]),
                explain={
                    "down_s": float(t - m.fall_down_t[slot]),
                    "box_w_h": [float(w[i]), float(h[i])],
                    "walking_w_h": [float(x) for x in wh[i]],
                    "speed_heights_per_s": float(speed[i]),
                    "cue": "pose"
                    if pose is not None and not np.isnan(pose[i])
                    else "flat"
                    if flat[i]
                    else "extent",
                    "lying_ratio": cfg.lying_ratio,
                    "extent_growth": cfg.extent_growth,
                    "still_speed": cfg.still_speed,
                    "min_down_s": cfg.min_down_s,
                },
            )
