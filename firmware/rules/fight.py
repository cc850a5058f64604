"""Fight / aggression: two or more people close together whose boxes move erratically
relative to each other (pushing, hitting, grappling), while the pair as a whole does not
travel (people walking or running side by side are not fighting).

Box features: over a short window, how far each frame-to-frame step of the vector between
the two people strays from its mean (steady approach or passing is not agitation), plus the
steps of both boxes' sizes, in person sizes per second. With pose keypoints, the pair's
mean wrist motion relative to their own boxes is added (punches and grabs move the arms
more than the boxes).
"""

from __future__ import annotations

import numpy as np

from firmware.events.records import Severity
from firmware.rules.base import FrameContext, Rule, RuleEnv
from firmware.rules.config import FightRule
from firmware.rules.situations import Situations

_WRISTS = [9, 10]  # COCO keypoints
_MIN_KP_SCORE = 0.3


def _diff(a: np.ndarray) -> np.ndarray:
    """np.diff along axis 1, without its overhead."""
    return a[:, 1:] - a[:, :-1]


def _unique_sorted(values: np.ndarray, size: int) -> np.ndarray:
    """np.unique for small non-negative ints below ``size``, without its sort."""
    seen = np.zeros(size, bool)
    seen[values] = True
    return np.flatnonzero(seen)


class Fight(Rule):
    name = "fight"
    cfg: FightRule

    def __init__(self, cfg: FightRule, env: RuleEnv):
        super().__init__(cfg, env)
        self.n = max(3, int(round(cfg.window_s * env.fps)) + 1)
        self.stride = max(1, int(round(cfg.step_s * env.fps)))
        # Frames back of the window's samples, oldest first: the last frame, and every
        # stride-th before it within the window.
        self.backs = np.arange(0, min(self.n, env.mem.history), self.stride)[::-1].copy()
        # pair -> (first agitated time, its frame, last agitated time)
        self.pair_since: dict[tuple[int, int], tuple[float, int, float]] = {}
        self.group_of: dict[int, tuple[int, int]] = {}  # track id -> situation key
        env.mem.alloc("fight_t", (), np.float64, np.nan)  # last time in a confirmed fight
        # Per person, running means of the centre step and of how far each step strays from
        # it (plus size steps), px per frame. A pair's agitation cannot much exceed the sum of
        # its two people's, so calm people are skipped without reading their history.
        env.mem.alloc("fight_step", (2,), np.float64, 0.0)
        env.mem.alloc("fight_energy", (), np.float64, 0.0)
        # With keypoints: wrists relative to the box centre last frame, and a running mean of
        # their step (px per frame).
        env.mem.alloc("fight_wrist", (2, 2), np.float64, np.nan)
        env.mem.alloc("fight_arm", (), np.float64, 0.0)
        self.alpha = 1.0 / self.n

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        cfg, mem = self.cfg, self.env.mem
        p = len(ctx.p_slots)
        if p == 0:
            self._forget(ctx.t, set())
            return
        b = ctx.p_boxes
        # Steps over the stride (per frame), as the pair test measures them.
        prev = mem.back_boxes(ctx.p_slots, self.stride)  # a new track: its own box, no step
        k = 1.0 / self.stride
        twice_c = b[:, :2] + b[:, 2:]  # box centres, doubled
        size = b[:, 2:] - b[:, :2]  # (w, h)
        step = (twice_c - (prev[:, :2] + prev[:, 2:])) * (0.5 * k)
        mean_step = mem.fight_step.take(ctx.p_slots, axis=0)  # take: faster row gather
        dev = step - mean_step
        size_step = np.abs(size - (prev[:, 2:] - prev[:, :2])).sum(axis=1)  # |dw| + |dh|
        e = np.hypot(dev[:, 0], dev[:, 1]) + size_step * (0.5 * k)
        mem.fight_step[ctx.p_slots] = mean_step + self.alpha * dev
        energy = mem.fight_energy[ctx.p_slots]
        energy += self.alpha * (e - energy)
        mem.fight_energy[ctx.p_slots] = energy
        arm = self._arms(ctx) if ctx.keypoints is not None else mem.fight_arm[ctx.p_slots]
        energy = energy + arm
        if p < 2:
            self._forget(ctx.t, set())
            return
        # Candidate pairs: centres closer than max_distance mean sizes, and not both calm.
        # Person size: the box's longer side (the height of an upright person; still a
        # body length from overhead, where boxes are wider than tall).
        h = np.maximum(size.max(axis=1), 1.0)
        big = h >= cfg.min_size_px
        # A pair passes the energy test only if one of its two people does on their own.
        bar = 0.9 * cfg.min_agitation / self.env.fps
        rows = np.nonzero(big & (energy >= 0.5 * bar * h))[0]
        if len(rows) == 0:
            self._forget(ctx.t, set())
            return
        c = twice_c * 0.5
        cr = c.take(rows, axis=0)
        d = np.hypot(cr[:, None, 0] - c[None, :, 0], cr[:, None, 1] - c[None, :, 1])  # (R,P)
        hm = (h[rows, None] + h[None, :]) * 0.5
        close = (
            (d < cfg.max_distance * hm)
            & big[None, :]
            & (energy[rows, None] + energy[None, :] >= bar * hm)
        )
        close[np.arange(len(rows)), rows] = False
        ri, jj = np.nonzero(close)
        ii = rows[ri]
        # Each pair once, as (smaller index, larger index).
        ii, jj = np.minimum(ii, jj), np.maximum(ii, jj)
        if len(ii) > 1:
            key = _unique_sorted(ii * p + jj, p * p)
            ii, jj = key // p, key % p
        if len(ii) == 0:
            self._forget(ctx.t, set())
            return
        pair_d = np.hypot(*(c.take(ii, axis=0) - c.take(jj, axis=0)).T)
        pair_hm = (h[ii] + h[jj]) * 0.5
        in_pair = np.zeros(p, bool)
        in_pair[ii] = True
        in_pair[jj] = True
        members = np.flatnonzero(in_pair)
        row = np.zeros(p, np.int64)  # person index -> row among the members
        row[members] = np.arange(len(members))
        # Only the people in pairs, at steps of step_s (frame-to-frame box jitter would
        # read as motion).
        boxes, times = mem.window_at(ctx.p_slots[members], self.backs)
        cen = (boxes[..., :2] + boxes[..., 2:]) * 0.5  # (M,m,2)
        size_steps = np.abs(_diff(boxes[..., 2:] - boxes[..., :2])).sum(axis=-1)
        wi_, wj_ = row[ii], row[jj]
        # Erratic relative motion: each step's deviation from the pair's mean relative step
        # (two people passing each other move steadily: no agitation). A frame missing in
        # the window gives NaN, and the pair is not judged.
        steps = _diff(cen[wi_] - cen[wj_])
        dev = steps - steps.sum(axis=1, keepdims=True) / steps.shape[1]  # as np.mean does
        moved = np.hypot(dev[..., 0], dev[..., 1]) + 0.5 * (size_steps[wi_] + size_steps[wj_])
        span = times[wi_, -1] - times[wi_, 0]
        arm_rate = (arm[ii] + arm[jj]) * 0.5 * self.env.fps / pair_hm
        agit = moved.sum(axis=1) / (span * pair_hm) + arm_rate
        mid = (cen[wi_] + cen[wj_]) * 0.5
        common = np.hypot(*(mid[:, -1] - mid[:, 0]).T) / (span * pair_hm)
        ok = (agit >= cfg.min_agitation) & (common <= cfg.max_pair_speed)
        if cfg.crowd_others and ok.any():
            ok &= self._others_near(c, ii, jj, pair_hm) < cfg.crowd_others
        active: set[tuple[int, int]] = set()
        for k in np.nonzero(ok)[0].tolist():
            i, j = int(ii[k]), int(jj[k])
            a, bb = int(ctx.p_ids[i]), int(ctx.p_ids[j])
            pair = (min(a, bb), max(a, bb))
            active.add(pair)
            since_t, since_f, _ = self.pair_since.get(pair, (ctx.t, ctx.frame, ctx.t))
            self.pair_since[pair] = (since_t, since_f, ctx.t)
            if ctx.t - since_t < cfg.min_duration_s - 1e-9:
                continue
            # People already in an open fight join it: one event per brawl, not per pair.
            key = self.group_of.get(pair[0]) or self.group_of.get(pair[1])
            if key is None or (self.name, key) not in sits.open:
                key = pair
            if len(self.group_of) > 256:
                self.group_of = {
                    t: g for t, g in self.group_of.items() if (self.name, g) in sits.open
                }
            self.group_of[pair[0]] = self.group_of[pair[1]] = key
            mem.fight_t[ctx.p_slots[[i, j]]] = ctx.t
            sits.observe(
                (self.name, key),
                ctx.t,
                ctx.frame,
                type="fight",
                rule=self.name,
                severity=Severity.ALERT,
                track_ids=list(pair),
                grace_s=cfg.end_grace_s,
                start_time=since_t,
                start_frame=since_f,
                explain={
                    "agitation_sizes_per_s": float(agit[k]),
                    "arms_sizes_per_s": float(arm_rate[k]),
                    "distance_sizes": float(pair_d[k] / pair_hm[k]),
                    "pair_speed_sizes_per_s": float(common[k]),
                    "min_agitation": cfg.min_agitation,
                    "max_distance": cfg.max_distance,
                    "max_pair_speed": cfg.max_pair_speed,
                    "min_duration_s": cfg.min_duration_s,
                },
            )
        self._forget(ctx.t, active)

    def _others_near(
        self, c: np.ndarray, ii: np.ndarray, jj: np.ndarray, pair_hm: np.ndarray
    ) -> np.ndarray:
        """(K,) people other than the pair within max_distance pair sizes of its midpoint."""
        mid = (c.take(ii, axis=0) + c.take(jj, axis=0)) * 0.5
        d = np.hypot(mid[:, None, 0] - c[None, :, 0], mid[:, None, 1] - c[None, :, 1])
        near = d < self.cfg.max_distance * pair_hm[:, None]
        k = np.arange(len(ii))
        near[k, ii] = False
        near[k, jj] = False
        return near.sum(axis=1)

    def _arms(self, ctx: FrameContext) -> np.ndarray:
        """Update and return each person's running mean wrist step (px per frame), wrists
        taken relative to their box centre so walking does not count."""
        mem, s = self.env.mem, ctx.p_slots
        kp = np.asarray(ctx.keypoints)[ctx.people][:, _WRISTS]  # (P,2,3)
        b = ctx.p_boxes
        centre = (b[:, :2] + b[:, 2:]) * 0.5
        seen_now = kp[..., 2] >= _MIN_KP_SCORE
        rel = np.where(seen_now[..., None], kp[..., :2] - centre[:, None, :], np.nan)
        last = mem.fight_wrist[s]
        step = np.hypot(rel[..., 0] - last[..., 0], rel[..., 1] - last[..., 1])  # (P,2)
        ok = ~np.isnan(step)
        mean_step = np.where(ok, step, 0.0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
        arm = mem.fight_arm[s]
        arm = np.where(ok.any(axis=1), arm + self.alpha * (mean_step - arm), arm)
        mem.fight_arm[s] = arm
        mem.fight_wrist[s] = rel
        return arm

    def _forget(self, t: float, active: set[tuple[int, int]]) -> None:
        """Drop pairs whose agitation stopped for longer than a short dip."""
        gap = max(0.5, self.cfg.window_s / 2)
        for pair in [q for q, v in self.pair_since.items() if q not in active and t - v[2] > gap]:
            del self.pair_since[pair]
