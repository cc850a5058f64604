"""Loitering: a person staying in a watched zone past a threshold, in stages (notice, warn,
alert). Time spent on earlier visits counts if they come back within the return window."""

from __future__ import annotations

import numpy as np

from firmware.events.records import Severity
from firmware.rules.base import FrameContext, Rule, RuleEnv
from firmware.rules.config import LoiteringRule
from firmware.rules.situations import Situations

# Zones where waiting is the normal thing to do are not watched unless named.
DEFAULT_PURPOSES = ("high_value", "staff_only", "fire_exit", "general")


class Loitering(Rule):
    name = "loitering"
    cfg: LoiteringRule

    def __init__(self, cfg: LoiteringRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.cols = env.zones.select(cfg.zones, None if cfg.zones else DEFAULT_PURPOSES)

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        if len(self.cols) == 0 or len(ctx.p_slots) == 0:
            return
        cfg = self.cfg
        zones = self.env.zones
        dwell = ctx.dwell().take(self.cols, axis=1)
        ii, jj = np.nonzero(dwell >= cfg.threshold_s)
        if len(ii) == 0:
            return
        visits = self.env.mem.z_visits
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            d = float(dwell[i, j])
            sev = (
                Severity.ALERT
                if d >= cfg.alert_s
                else Severity.WARN
                if d >= cfg.warn_s
                else Severity.NOTICE
            )
            z = int(self.cols[j])
            tid = int(ctx.p_ids[i])
            sits.observe(
                (self.name, tid, z),
                ctx.t,
                ctx.frame,
                type="loitering",
                rule=self.name,
                severity=sev,
                zone=zones.names[z],
                track_ids=[tid],
                grace_s=cfg.end_grace_s,
                explain={
                    "dwell_s": d,
                    "visits": int(visits[ctx.p_slots[i], z]),
                    "zone_purpose": zones.purposes[z],
                    "threshold_s": cfg.threshold_s,
                    "warn_s": cfg.warn_s,
                    "alert_s": cfg.alert_s,
                    "return_window_s": cfg.return_window_s,
                },
            )
