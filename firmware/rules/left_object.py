"""Left object: a bag-class object (backpack, handbag, suitcase) that stays put while the
person who brought it has gone. The owner is the person nearest the object while it was
last carried (or when first seen)."""

from __future__ import annotations

import numpy as np

from firmware.events.records import Severity
from firmware.rules.base import FrameContext, Rule, RuleEnv
from firmware.rules.config import LeftObjectRule
from firmware.rules.situations import Situations
from firmware.types import BACKPACK, HANDBAG, SUITCASE


def _nearest(ctx: FrameContext, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances from points ``c`` to every person in their heights (K,P), and per point
    the nearest one's distance and track id (inf and -1 with nobody in view)."""
    pc = (ctx.p_boxes[:, :2] + ctx.p_boxes[:, 2:]) * 0.5
    ph = np.maximum(ctx.p_heights, 1.0)
    d = np.hypot(c[:, None, 0] - pc[None, :, 0], c[:, None, 1] - pc[None, :, 1]) / ph
    if d.shape[1] == 0:
        return d, np.full(len(c), np.inf), np.full(len(c), -1)
    near = np.argmin(d, axis=1)
    return d, d[np.arange(len(c)), near], ctx.p_ids[near]


class LeftObject(Rule):
    name = "left_object"
    cfg: LeftObjectRule

    def __init__(self, cfg: LeftObjectRule, env: RuleEnv):
        super().__init__(cfg, env)
        m = env.mem
        m.alloc("lo_anchor", (2,), np.float64, np.nan)  # where the object settled
        m.alloc("lo_still_t", (), np.float64, np.nan)
        m.alloc("lo_owner", (), np.int64, -1)
        m.alloc("lo_alone_t", (), np.float64, np.nan)
        m.alloc("lo_alone_f", (), np.int64, -1)

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        cls = ctx.classes
        objs = np.nonzero((cls == BACKPACK) | (cls == HANDBAG) | (cls == SUITCASE))[0]
        if len(objs) == 0:
            return
        cfg, m, t = self.cfg, self.env.mem, ctx.t
        slots = ctx.slots[objs]
        b = ctx.boxes.take(objs, axis=0)  # take: faster than fancy row indexing
        c = (b[:, :2] + b[:, 2:]) * 0.5
        size = np.maximum(np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]), 1.0)
        anchor = m.lo_anchor.take(slots, axis=0)  # take: faster row gather
        moved = np.isnan(anchor[:, 0]) | (np.hypot(*(c - anchor).T) > cfg.max_motion * size)
        # Carried (or just seen): the nearest person within reach is the owner. Only the
        # objects that moved need their distances to people this frame.
        if moved.any():
            c_moved = c[moved]
            _, near_d, nearest = _nearest(ctx, c_moved)
            m.lo_anchor[slots[moved]] = c_moved
            m.lo_still_t[slots[moved]] = t
            m.lo_owner[slots[moved]] = np.where(near_d <= cfg.owner_distance, nearest, -1)
        still = t - m.lo_still_t[slots] >= cfg.min_still_s
        if not still.any():  # everything carried or just put down
            m.lo_alone_t[slots] = np.nan
            return
        d, near_d, _ = _nearest(ctx, c)
        owner = m.lo_owner[slots]
        is_owner = ctx.p_ids[None, :] == owner[:, None]
        seen = is_owner.any(axis=1)
        owner_d = np.where(seen, np.where(is_owner, d, np.inf).min(axis=1, initial=np.inf), np.inf)
        alone = still & (owner_d > cfg.owner_distance)
        if cfg.require_owner:
            alone &= owner >= 0
        start = alone & np.isnan(m.lo_alone_t[slots])
        m.lo_alone_t[slots] = np.where(alone, np.where(start, t, m.lo_alone_t[slots]), np.nan)
        m.lo_alone_f[slots] = np.where(start, ctx.frame, m.lo_alone_f[slots])
        fire = alone & (t - m.lo_alone_t[slots] >= cfg.min_alone_s - 1e-9)
        for k in np.nonzero(fire)[0].tolist():
            slot = slots[k]
            oid = int(ctx.ids[objs[k]])
            own = int(owner[k])
            sits.observe(
                (self.name, oid),
                t,
                ctx.frame,
                type="left_object",
                rule=self.name,
                severity=Severity.WARN,
                track_ids=[oid] + ([own] if own >= 0 else []),
                grace_s=cfg.end_grace_s,
                start_time=float(m.lo_alone_t[slot]),
                start_frame=int(m.lo_alone_f[slot]),
                explain={
                    "object_class": int(ctx.classes[objs[k]]),
                    "still_s": float(t - m.lo_still_t[slot]),
                    "unattended_s": float(t - m.lo_alone_t[slot]),
                    "owner_id": own if own >= 0 else None,
                    "owner_distance_heights": float(owner_d[k]) if seen[k] else None,
                    "nearest_person_heights": float(near_d[k]) if np.isfinite(near_d[k]) else None,
                    "min_still_s": cfg.min_still_s,
                    "min_alone_s": cfg.min_alone_s,
                    "owner_distance": cfg.owner_distance,
                },
            )
