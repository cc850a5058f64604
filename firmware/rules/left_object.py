"""Left object: a bag-class object (backpack, handbag, suitcase) that stays put while the
person who brought it has gone. The owner is the person nearest the object while it was
last carried (or when first seen)."""

from __future__ import annotations

import numpy as np

from firmware.events.records import Severity
from firmware.rules.base import FrameContext, Rule, RuleEnv
from firmware.rules.config import LeftObjectRule
from firmware.rules.situations import Situations
from firmware.types import CARRIED_OBJECTS


class LeftObject(Rule):
    name = "left_object"
    cfg: LeftObjectRule

    def __init__(self, cfg: LeftObjectRule, env: RuleEnv):
        super().__init__(cfg, env)
        m = env.mem
        m.alloc("lo_anchor", (2,), np.float64, np.nan)
        m.alloc("lo_still_t", (), np.float64, np.nan)
        m.alloc("lo_owner", (), np.int64, -1)
        m.alloc("lo_alone_t", (), np.float64, np.nan)
        m.alloc("lo_alone_f", (), np.int64, -1)

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        objs = np.nonzero(np.isin(ctx.classes, CARRIED_OBJECTS))[0]
        if len(objs) == 0:
            return
        cfg, m, t = self.cfg, self.env.mem, ctx.t
        pc = (ctx.p_boxes[:, :2] + ctx.p_boxes[:, 2:]) * 0.5
        ph = np.maximum(ctx.p_heights, 1.0)
        person_index = {int(tid): i for i, tid in enumerate(ctx.p_ids.tolist())}
        for k in objs.tolist():
            slot = int(ctx.slots[k])
            b = ctx.boxes[k]
            c = np.array([(b[0] + b[2]) * 0.5, (b[1] + b[3]) * 0.5])
            size = max(float(b[3] - b[1]), float(b[2] - b[0]), 1.0)
            anchor = m.lo_anchor[slot]
            moved = bool(np.isnan(anchor[0]) or np.hypot(*(c - anchor)) > cfg.max_motion * size)
            if len(pc):
                d = np.hypot(pc[:, 0] - c[0], pc[:, 1] - c[1]) / ph
                near = int(np.argmin(d))
                nearest, near_d = int(ctx.p_ids[near]), float(d[near])
            else:
                nearest, near_d = -1, np.inf
            if moved:
                m.lo_anchor[slot] = c
                m.lo_still_t[slot] = t
                # Carried (or just seen): the nearest person within reach is the owner.
                m.lo_owner[slot] = nearest if near_d <= cfg.owner_distance else -1
                m.lo_alone_t[slot] = np.nan
            owner = int(m.lo_owner[slot])
            oi = person_index.get(owner)
            owner_d = float(np.hypot(*(pc[oi] - c)) / ph[oi]) if oi is not None else float("inf")
            present = owner_d <= cfg.owner_distance
            still_s = t - float(m.lo_still_t[slot])
            if still_s < cfg.min_still_s or present:
                m.lo_alone_t[slot] = np.nan
                continue
            if np.isnan(m.lo_alone_t[slot]):
                m.lo_alone_t[slot] = t
                m.lo_alone_f[slot] = ctx.frame
            alone_s = t - float(m.lo_alone_t[slot])
            if alone_s < cfg.min_alone_s - 1e-9:
                continue
            oid = int(ctx.ids[k])
            sits.observe(
                (self.name, oid),
                t,
                ctx.frame,
                type="left_object",
                rule=self.name,
                severity=Severity.WARN,
                track_ids=[oid] + ([owner] if owner >= 0 else []),
                grace_s=cfg.end_grace_s,
                start_time=float(m.lo_alone_t[slot]),
                start_frame=int(m.lo_alone_f[slot]),
                explain={
                    "object_class": int(ctx.classes[k]),
                    "still_s": still_s,
                    "unattended_s": alone_s,
                    "owner_id": owner if owner >= 0 else None,
                    "owner_distance_heights": None if oi is None else owner_d,
                    "nearest_person_heights": None if nearest < 0 else near_d,
                    "min_still_s": cfg.min_still_s,
                    "min_alone_s": cfg.min_alone_s,
                    "owner_distance": cfg.owner_distance,
                },
            )
