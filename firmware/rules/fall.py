"""Fall / person down: a quick change to a lying posture, then staying down (see FallRule)."""

from __future__ import annotations

import numpy as np

from firmware.events.records import Severity
from firmware.rules.base import FrameContext, Rule, RuleEnv
from firmware.rules.config import FallRule
from firmware.rules.motion import MOTION_WINDOW_S
from firmware.rules.situations import Situations

# COCO keypoints: head 0-4, shoulders 5, 6; hips 11, 12; knees 13, 14.
_SHOULDERS, _HIPS = [5, 6], [11, 12]
_HEAD, _KNEES = [0, 1, 2, 3, 4], [13, 14]  # nose, eyes, ears; knees
_MIN_KP_SCORE = 0.3
_MOVING = 0.6  # heights per second: up and walking


def torso_lying(kp: np.ndarray | None) -> np.ndarray | None:
    """Per person 1.0 (torso nearer horizontal, or the head below the hips and knees:
    someone lying with the head towards the camera, or upside down), 0.0 (torso nearer vertical, head
    above) or NaN (shoulders or hips not seen); None without keypoints."""
    if kp is None or len(kp) == 0:
        return None
    sh, hp = kp[:, _SHOULDERS], kp[:, _HIPS]
    ok = (sh[..., 2] >= _MIN_KP_SCORE).all(axis=1) & (hp[..., 2] >= _MIN_KP_SCORE).all(axis=1)
    d = sh[..., :2].mean(axis=1) - hp[..., :2].mean(axis=1)
    lying = np.abs(d[:, 0]) > np.abs(d[:, 1])
    head = kp[:, _HEAD]
    seen = head[..., 2] >= _MIN_KP_SCORE
    head_y = np.where(seen, head[..., 1], np.nan)
    with np.errstate(invalid="ignore"):
        low = np.nanmin(np.where(seen.any(axis=1, keepdims=True), head_y, np.inf), axis=1)
        # Below the knees too where they are seen: someone bending over to the floor has
        # the head below the hips, but not below the knees.
        knees = kp[:, _KNEES]
        knee_y = np.where(knees[..., 2] >= _MIN_KP_SCORE, knees[..., 1], -np.inf).max(axis=1)
        lying |= seen.any(axis=1) & (low > np.maximum(hp[..., 1].max(axis=1), knee_y))
    return np.where(ok, lying.astype(np.float64), np.nan)


class Fall(Rule):
    name = "fall"
    cfg: FallRule

    def __init__(self, cfg: FallRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.n = max(2, int(round(MOTION_WINDOW_S * env.fps)) + 1)
        self.ref_far = min(env.mem.history, int(round(cfg.reference_s[1] * env.fps)) + 1)
        self.ref_near = int(round(cfg.reference_s[0] * env.fps))
        m = env.mem
        m.alloc("fall_moving_t", (), np.float64, np.nan)  # last time up and moving, or upright
        m.alloc("fall_upright_t", (), np.float64, np.nan)
        m.alloc("fall_down_t", (), np.float64, np.nan)
        m.alloc("fall_down_f", (), np.int64, -1)
        m.alloc("fall_ref_wh", (2,), np.float64, np.nan)  # box size before going down
        m.alloc("fall_down_xy", (2,), np.float64, np.nan)  # box centre when going down
        m.alloc("fall_cue", (), np.int8, 0)

    def _reference(self, slots: np.ndarray) -> np.ndarray:
        """(S,2) median box (w,h) over the reference window; NaN with under a second of it."""
        boxes, _ = self.env.mem.window(slots, self.ref_far)
        old = boxes[:, : max(1, self.ref_far - self.ref_near)]
        wh = np.stack([old[..., 2] - old[..., 0], old[..., 3] - old[..., 1]], axis=-1)
        enough = np.sum(~np.isnan(wh[..., 0]), axis=1) >= self.env.fps
        ref = np.full((len(slots), 2), np.nan)
        if enough.any():
            ref[enough] = np.nanmedian(wh[enough], axis=1)
        return ref

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if len(ctx.p_slots) == 0:
            return
        cfg, m, t = self.cfg, self.env.mem, ctx.t
        s = ctx.p_slots
        b = ctx.p_boxes
        w = np.maximum(b[:, 2] - b[:, 0], 1.0)
        h = np.maximum(b[:, 3] - b[:, 1], 1.0)
        v, _ = ctx.speeds(self.n)
        speed = np.hypot(v[:, 0], v[:, 1])
        inside = ctx.inside(self.env.frame_size)
        still = (speed < cfg.still_speed) & inside
        upright = h / w >= cfg.upright_ratio
        pose = None
        if ctx.keypoints is not None:
            pose = torso_lying(np.asarray(ctx.keypoints)[ctx.people])
            if pose is not None:
                upright = np.where(np.isnan(pose), upright, pose == 0)
        m.fall_moving_t[s[(speed >= _MOVING) | upright]] = t
        m.fall_upright_t[s[upright]] = t
        down = ~np.isnan(m.fall_down_t[s])
        lying = still & ~upright
        # Once down, moving on the floor (writhing, crawling, trying to get up) slower than
        # floor_speed still counts as down; only getting up or walking off ends it.
        floor = (speed < cfg.floor_speed) & inside & ~upright
        if not lying.any() and not (down & floor).any():  # no onset, nobody still down
            if down.any():
                m.fall_down_t[s[down]] = np.nan
            return
        flat = (w / h >= cfg.lying_ratio) & ~np.isnan(m.fall_upright_t[s])
        if pose is not None:
            flat = np.where(np.isnan(pose), flat, pose == 1)
        # Onset: someone up and moving a moment ago is now still in a lying posture.
        recent = t - m.fall_moving_t[s] <= cfg.moving_within_s
        cand = np.nonzero(~down & lying & recent)[0]
        if len(cand):
            ref = self._reference(s[cand])
            # The growth cue is for silhouettes seen from above: someone whose box was
            # upright a moment ago (a side view) and is now wider is reaching or bending.
            overhead = ~(ref[:, 1] >= cfg.upright_ratio * ref[:, 0])
            grown = overhead & (
                (w[cand] >= cfg.extent_growth * ref[:, 0])
                | (h[cand] >= cfg.extent_growth * ref[:, 1])
            )
            start = grown | flat[cand]
            go = cand[start]
            m.fall_down_t[s[go]] = t
            m.fall_down_f[s[go]] = ctx.frame
            m.fall_ref_wh[s[go]] = ref[start]
            m.fall_down_xy[s[go]] = (b[go, :2] + b[go, 2:]) * 0.5
            m.fall_cue[s[go]] = np.where(flat[go], 1, 2)
            down[go] = True
        if not down.any():
            return
        # Staying down: on the floor where they went down (moving about on the spot, not
        # travelling: a slow walker is not down), and still lying (against the size before
        # the fall).
        xy = m.fall_down_xy[s]
        travel = np.hypot(*((b[:, :2] + b[:, 2:]) * 0.5 - xy).T)
        with np.errstate(invalid="ignore"):
            floor &= ~(travel > cfg.floor_radius * np.maximum(w, h))
        ref = m.fall_ref_wh[s]
        grown = (w >= cfg.extent_growth * ref[:, 0]) | (h >= cfg.extent_growth * ref[:, 1])
        cue = m.fall_cue[s]
        stays = down & floor & np.where(cue == 2, grown, flat)
        gone = down & ~stays
        m.fall_down_t[s[gone]] = np.nan
        held = stays & (t - m.fall_down_t[s] >= cfg.min_down_s - 1e-9)
        for i in np.nonzero(held)[0].tolist():
            slot = s[i]
            tid = int(ctx.p_ids[i])
            cue = (
                "pose"
                if pose is not None and not np.isnan(pose[i])
                else "wider_than_tall"
                if flat[i]
                else "grown"
            )
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
                    "cue": cue,
                    "box_w_h": [float(w[i]), float(h[i])],
                    "before_w_h": [float(x) for x in m.fall_ref_wh[slot]],
                    "speed_heights_per_s": float(speed[i]),
                    "lying_ratio": cfg.lying_ratio,
                    "extent_growth": cfg.extent_growth,
                    "still_speed": cfg.still_speed,
                    "floor_speed": cfg.floor_speed,
                    "travel_sizes": float(travel[i] / max(w[i], h[i])),
                    "min_down_s": cfg.min_down_s,
                },
            )
