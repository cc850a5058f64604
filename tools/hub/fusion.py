"""Store-wide identities from the units' tracks: online fusion of floor positions (no MQTT here).

A plain component: feed it each unit's per-frame track observations (``add``), advance it
(``step``), read the global tracks (``tracks``) and what each local track was called
(``Assignment``). It is a tracker on the floor plan whose "detections" are the units' foot
points, one unit-frame at a time, in time order: every unit-frame is matched one-to-one
(Hungarian) to the store's global tracks on floor distance, with a bonus for the global id a
local track already carries. That bonus keeps ids steady, yet a local track whose position
leaves its global track (the unit's tracker swapped two people) is split and re-assigned
from the other cameras' evidence. Lost people are re-found only when the match is unique
and the travel plausible; two global tracks that move together with no camera seeing both
at once are merged. Causal: a unit-frame is handled once, ``latency_s`` after its time, and
late or out-of-order frames are handled on arrival against the current state.
"""

from __future__ import annotations

import collections
import heapq
import itertools
from dataclasses import dataclass, field

import cbor2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import linear_sum_assignment

_BIG = 1e6


class FusionConfig(BaseModel):
    """Fusion settings; lengths in metres, times in seconds (the defaults are the hub's)."""

    model_config = ConfigDict(extra="forbid")

    gate_m: float = Field(
        1.2, gt=0, description="farthest a foot point may be from a global track to join it"
    )
    link_bonus_m: float = Field(
        0.8, ge=0, description="cost credit for the global id a local track already carries"
    )
    gate_spread: float = Field(
        4.0,
        gt=0,
        description="with enough evidence the gate is this many times the camera's cross-view spread",
    )
    gate_max_m: float = Field(5.0, gt=0, description="the learnt gate never exceeds this")
    bonus_share: float = Field(0.5, ge=0, description="link bonus as a share of the learnt gate")
    gain: float = Field(
        0.35, gt=0, le=1, description="weight of one camera's foot point in the fused position"
    )
    active_s: float = Field(
        1.0, gt=0, description="a global track unseen this long is lost (re-found only uniquely)"
    )
    max_lost_s: float = Field(
        10.0, gt=0, description="a lost global track is forgotten after this long"
    )
    walk_mps: float = Field(
        1.5, gt=0, description="plausible walking speed for re-finding a lost person"
    )
    merge_m: float = Field(
        0.9, gt=0, description="two global tracks closer than this may be one person"
    )
    merge_s: float = Field(
        1.0, gt=0, description="... once they moved together this long, no camera seeing both"
    )
    latency_s: float = Field(
        0.2, ge=0, description="wait this long for other units' frames of the same moment"
    )
    max_speed_mps: float = Field(3.0, gt=0, description="velocity estimates are clipped to this")


@dataclass
class Observation:
    """One unit-frame: its time (unit clock, s), frame number, local ids and floor points (NaN if uncalibrated)."""

    unit: str
    time: float
    frame: int
    local_ids: np.ndarray  # (N,) int64
    xy: np.ndarray  # (N, 2) metres on the store plan; NaN rows where the camera has no floor


@dataclass
class Assignment:
    """The global id fusion gave one local track in one unit-frame."""

    unit: str
    frame: int
    time: float
    local_id: int
    global_id: int


@dataclass
class GlobalTrack:
    """One person in the store: fused floor position and velocity, and who sees them."""

    gid: int
    pos: np.ndarray
    vel: np.ndarray
    time: float
    first_time: float
    placed: bool = True  # False: only an uncalibrated camera sees them (no floor position)
    hits: int = 0
    seen_by: dict[str, tuple[int, float]] = field(default_factory=dict)  # unit -> (local id, time)

    @property
    def on_floor(self) -> bool:
        """Placed by a calibrated camera, with a finite floor position."""
        return bool(self.placed and np.isfinite(self.pos).all())


class _State:
    """The global tracks as arrays (one row a track, one column a unit), so that one tick's
    unit-frames are matched with a few numpy operations instead of Python loops."""

    def __init__(self) -> None:
        self.n = 0
        self.gid = np.zeros(0, np.int64)
        self.pos = np.zeros((0, 2))
        self.vel = np.zeros((0, 2))
        self.time = np.zeros(0)
        self.first = np.zeros(0)
        self.placed = np.zeros(0, bool)
        self.hits = np.zeros(0, np.int64)
        self.vpos = np.zeros((0, 2))  # position at the last velocity sample
        self.vtime = np.full(0, np.nan)  # its time (NaN: none yet)
        self.seen_t = np.zeros((0, 0))  # (track, unit) -> last time that unit saw it (-inf)
        self.seen_lid = np.zeros((0, 0), np.int64)  # (track, unit) -> its local id then
        self.row: dict[int, int] = {}

    def add_unit(self) -> None:
        self.seen_t = np.column_stack([self.seen_t, np.full(self.seen_t.shape[0], -np.inf)])
        self.seen_lid = np.column_stack([self.seen_lid, np.zeros(self.seen_lid.shape[0], np.int64)])

    def new(self, gid: int, xy: np.ndarray, t: float, placed: bool) -> int:
        if self.n == self.gid.size:  # grow by doubling
            cap = max(16, 2 * self.n)
            for name in ("gid", "pos", "vel", "time", "first", "placed", "hits", "vpos", "vtime"):
                a = getattr(self, name)
                b = np.zeros((cap, *a.shape[1:]), a.dtype)
                b[: self.n] = a[: self.n]
                setattr(self, name, b)
            for name, fill in (("seen_t", -np.inf), ("seen_lid", 0)):
                a = getattr(self, name)
                b = np.full((cap, a.shape[1]), fill, a.dtype)
                b[: self.n] = a[: self.n]
                setattr(self, name, b)
        r = self.n
        self.n += 1
        self.gid[r], self.pos[r], self.vel[r] = gid, xy, 0.0
        self.time[r] = self.first[r] = t
        self.placed[r], self.hits[r] = placed, 0
        self.vpos[r], self.vtime[r] = xy, np.nan
        self.seen_t[r], self.seen_lid[r] = -np.inf, 0
        self.row[gid] = r
        return r

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` is False (compaction)."""
        n = self.n
        mask = mask[:n]
        for name in (
            "gid",
            "pos",
            "vel",
            "time",
            "first",
            "placed",
            "hits",
            "vpos",
            "vtime",
            "seen_t",
            "seen_lid",
        ):
            a = getattr(self, name)
            setattr(self, name, a[:n][mask].copy())
        self.n = int(mask.sum())
        self.row = {int(g): r for r, g in enumerate(self.gid[: self.n])}


class Fusion:
    """Online multi-camera fusion; see the module docstring."""

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config if config is not None else FusionConfig()
        self._queue: list[tuple[float, int, Observation]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._s = _State()
        self._units: dict[str, int] = {}  # unit -> column of the seen arrays
        self._spread: dict[str, collections.deque] = {}  # unit -> recent cross-view distances
        self._gates: dict[str, float] = {}  # unit -> median of its recent cross-view distances
        self._gate_calls: dict[str, int] = {}  # unit -> how often its gate was asked for
        self._links: dict[tuple[str, int], tuple[int, float]] = {}  # (unit, local) -> (gid, time)
        self._together: dict[tuple[int, int], float] = {}  # (gid, gid) -> since when close
        self._links_swept = -np.inf  # limit of the last sweep of stale links
        self.clock = -np.inf  # time of the latest unit-frame handled
        self.late = 0  # unit-frames handled after a later one (out of order)

    # ------------------------------------------------------------------ input / output
    def add(self, obs: Observation) -> None:
        """Queue one unit-frame (any order); ``step`` handles it."""
        xy = np.asarray(obs.xy, np.float64).reshape(-1, 2)
        ids = np.asarray(obs.local_ids, np.int64).reshape(-1)
        if ids.size != xy.shape[0]:
            raise ValueError(
                f"unit {obs.unit} frame {obs.frame}: {ids.size} ids but {xy.shape[0]} points"
            )
        obs = Observation(obs.unit, float(obs.time), int(obs.frame), ids, xy)
        heapq.heappush(self._queue, (obs.time, next(self._seq), obs))

    def step(self, now: float) -> list[Assignment]:
        """Handle every queued unit-frame up to ``now - latency_s``; their assignments.
        Unit-frames of one moment (same time) are handled together, merges once for them."""
        out: list[Assignment] = []
        horizon = now - self.config.latency_s
        while self._queue and self._queue[0][0] <= horizon:
            t0 = self._queue[0][0]
            batch = []
            while self._queue and self._queue[0][0] == t0:
                batch.append(heapq.heappop(self._queue)[2])
            out.extend(self._tick(batch))
            self._merge(t0)
        self._expire(now)
        return out

    def flush(self) -> list[Assignment]:
        """Handle everything queued (end of a replay)."""
        return self.step(np.inf) if self._queue else []

    def tracks(self, max_age_s: float | None = None) -> list[GlobalTrack]:
        """Global tracks seen within ``max_age_s`` of the fusion clock (default ``active_s``)."""
        age = self.config.active_s if max_age_s is None else max_age_s
        s = self._s
        units = list(self._units)
        out = []
        for r in np.flatnonzero(self.clock - s.time[: s.n] <= age):
            seen = {
                u: (int(s.seen_lid[r, c]), float(s.seen_t[r, c]))
                for u, c in self._units.items()
                if np.isfinite(s.seen_t[r, c])
            }
            out.append(
                GlobalTrack(
                    int(s.gid[r]),
                    s.pos[r].copy(),
                    s.vel[r].copy(),
                    float(s.time[r]),
                    float(s.first[r]),
                    bool(s.placed[r]),
                    int(s.hits[r]),
                    {u: seen[u] for u in units if u in seen},
                )
            )
        return out

    def store_tracks(self) -> bytes:
        """CBOR ``store-tracks`` message (docs/mqtt.md) of the tracks seen within ``active_s``."""
        out = []
        for g in self.tracks():
            placed = g.on_floor
            win = self.config.active_s
            units = [
                {"unit": u, "id": int(lid)}
                for u, (lid, ts) in sorted(g.seen_by.items())
                if self.clock - ts <= win
            ]
            out.append(
                {
                    "gid": g.gid,
                    "floor": [round(float(c), 2) for c in g.pos] if placed else None,
                    "floor_v": [round(float(c), 2) for c in g.vel] if placed else None,
                    "units": units,
                }
            )
        return cbor2.dumps({"v": 1, "time": float(self.clock), "tracks": out}, canonical=True)

    @property
    def size(self) -> tuple[int, int, int]:
        """(global tracks, local links, queued unit-frames): what the memory holds."""
        return self._s.n, len(self._links), len(self._queue)

    # ------------------------------------------------------------------ one unit-frame
    def _col(self, unit: str) -> int:
        c = self._units.get(unit)
        if c is None:
            c = self._units[unit] = len(self._units)
            self._s.add_unit()
        return c

    def _tick(self, batch: list[Observation]) -> list[Assignment]:
        """One moment's unit-frames (one time): a single cost matrix of every unit's foot
        points against the predicted global tracks, one Hungarian per unit on its rows."""
        t = batch[0].time
        if t < self.clock:
            self.late += len(batch)
        self.clock = max(self.clock, t)
        cols = [self._col(o.unit) for o in batch]
        gids = [np.zeros(o.local_ids.size, np.int64) for o in batch]
        parts = []  # (batch index, row indices into that observation) of placed points
        for k, o in enumerate(batch):
            placed = np.isfinite(o.xy).all(axis=1)
            for i in np.flatnonzero(~placed):  # uncalibrated camera: one id per local track
                gids[k][i] = self._unplaced(cols[k], int(o.local_ids[i]), o.unit, t)
            if placed.any():
                parts.append((k, np.flatnonzero(placed)))
        if parts:
            self._match(batch, cols, parts, gids, t)
        out = []
        links = self._links
        for o, g in zip(batch, gids, strict=True):
            for lid, gid in zip(o.local_ids.tolist(), g.tolist(), strict=True):
                links[(o.unit, lid)] = (gid, t)
                out.append(Assignment(o.unit, o.frame, t, lid, gid))
        return out

    def _match(
        self,
        batch: list[Observation],
        cols: list[int],
        parts: list[tuple[int, np.ndarray]],
        gids: list[np.ndarray],
        t: float,
    ) -> None:
        """Each unit's foot points in turn against the global tracks as the earlier units of
        this moment left them (what those units saw is part of the evidence), one Hungarian
        per unit; array operations only, no per-track Python."""
        cfg = self.config
        s = self._s
        links = self._links
        for k, i in parts:
            o, c = batch[k], cols[k]
            xy, lids = o.xy[i], o.local_ids[i]
            rows_out = np.full(xy.shape[0], -1)
            gate = cfg.gate_m
            cand = np.flatnonzero(s.placed[: s.n])
            if cand.size:
                age = t - s.time[cand]
                lead = np.minimum(np.maximum(age, 0.0), cfg.active_s)
                pred = s.pos[cand] + s.vel[cand] * lead[:, None]
                dist = np.sqrt(((xy[:, None, :] - pred[None]) ** 2).sum(axis=2))
                carried = np.fromiter(
                    (links.get((o.unit, lid), (0, 0.0))[0] for lid in lids.tolist()),
                    np.int64,
                    lids.size,
                )
                linked = carried[:, None] == s.gid[cand][None, :]
                active = age <= cfg.active_s
                dt = np.abs(t - s.seen_t[cand])
                near = (dt <= 0.3).sum(axis=1) - (dt[:, c] <= 0.3) > 0
                gate, bonus = self._gate(o.unit, dist, near)
                cost = np.where((dist <= gate) & active[None, :], dist - bonus * linked, _BIG)
                rr, cc = linear_sum_assignment(cost)
                good = cost[rr, cc] < _BIG
                rr, cc = rr[good], cc[good]
                rows_out[rr] = cand[cc]
                self._update(cand[cc], xy[rr], t, np.full(rr.size, c), lids[rr], jump=False)
                if rr.size < xy.shape[0]:
                    # a lost person is re-found only where exactly one lost track is plausible
                    taken = np.zeros(cand.size, bool)
                    taken[cc] = True
                    lost = ~active & ~taken & (age <= cfg.max_lost_s)
                    elsewhere = (dt <= cfg.active_s).sum(axis=1) - (dt[:, c] <= cfg.active_s) > 0
                    for r in np.flatnonzero(rows_out < 0):
                        reach = np.flatnonzero(lost & (dist[r] <= gate + cfg.walk_mps * age))
                        if reach.size == 1 and not elsewhere[reach[0]]:
                            j = reach[0]
                            lost[j] = False
                            rows_out[r] = cand[j]
                            self._update(
                                cand[j : j + 1],
                                xy[r : r + 1],
                                t,
                                np.array([c]),
                                lids[r : r + 1],
                                True,
                            )
            for r in np.flatnonzero(rows_out < 0):
                row = s.new(next(self._ids), xy[r], t, True)
                rows_out[r] = row
                self._update(
                    np.array([row]), xy[r : r + 1], t, np.array([c]), lids[r : r + 1], True
                )
            gids[k][i] = s.gid[rows_out]

    def _gate(self, unit: str, dist: np.ndarray, others: np.ndarray) -> tuple[float, float]:
        """This unit's gate and link bonus: learnt from how far its foot points land from
        people other cameras see now (the median nearest distance: calibration quality)."""
        cfg = self.config
        hist = self._spread.get(unit)
        if hist is None:
            hist = self._spread[unit] = collections.deque(maxlen=300)
        if others.any() and dist.shape[0]:
            hist.extend(dist[:, others].min(axis=1).tolist())
            self._gate_calls[unit] = n = self._gate_calls.get(unit, 0) + 1
            if n % 4 != 1 and len(hist) >= 50:  # the median moves slowly: refresh every 4th
                gate = float(
                    np.clip(cfg.gate_spread * self._gates[unit], cfg.gate_m, cfg.gate_max_m)
                )
                return gate, cfg.bonus_share * gate
            h = np.fromiter(hist, float, len(hist))
            m = len(h) // 2
            part = np.partition(h, [m - 1, m] if len(h) % 2 == 0 and m else [m])
            self._gates[unit] = float(
                0.5 * (part[m - 1] + part[m]) if len(h) % 2 == 0 and m else part[m]
            )
        if len(hist) < 50:
            return cfg.gate_m, cfg.link_bonus_m
        gate = float(np.clip(cfg.gate_spread * self._gates[unit], cfg.gate_m, cfg.gate_max_m))
        return gate, cfg.bonus_share * gate

    def _unplaced(self, col: int, lid: int, unit: str, t: float) -> int:
        s = self._s
        gid = self._links.get((unit, lid), (0, 0.0))[0]
        r = s.row.get(gid)
        if r is None:
            r = s.new(next(self._ids), np.zeros(2), t, False)
        s.time[r], s.hits[r] = t, s.hits[r] + 1
        s.seen_t[r, col], s.seen_lid[r, col] = t, lid
        return int(s.gid[r])

    def _update(
        self,
        rows: np.ndarray,
        z: np.ndarray,
        t: float,
        cols: np.ndarray,
        lids: np.ndarray,
        jump: bool,
    ) -> None:
        """Fold foot points ``z`` (from units ``cols``, all at time ``t``) into the distinct
        tracks ``rows``."""
        if rows.size == 0:
            return
        cfg = self.config
        s = self._s
        s.seen_t[rows, cols] = t
        s.seen_lid[rows, cols] = lids
        gain = cfg.gain  # rows are distinct: one unit, one-to-one
        dt = np.maximum(0.0, t - s.time[rows])
        pred = s.pos[rows] + s.vel[rows] * np.minimum(dt, cfg.active_s)[:, None]
        s.pos[rows] = z if jump else pred + gain * (z - pred)
        s.time[rows] = np.maximum(s.time[rows], t)
        s.hits[rows] += 1
        if jump:
            s.vpos[rows], s.vtime[rows], s.vel[rows] = s.pos[rows], t, 0.0
            return
        fresh = np.isnan(s.vtime[rows])
        s.vpos[rows[fresh]], s.vtime[rows[fresh]] = s.pos[rows[fresh]], t
        due = ~fresh & (t - s.vtime[rows] >= 0.2)
        r = rows[due]
        if r.size:
            v = (s.pos[r] - s.vpos[r]) / (t - s.vtime[r])[:, None]
            vel = 0.5 * s.vel[r] + 0.5 * v
            speed = np.sqrt((vel**2).sum(axis=1))
            over = speed > cfg.max_speed_mps
            vel[over] *= (cfg.max_speed_mps / speed[over])[:, None]
            s.vel[r], s.vpos[r], s.vtime[r] = vel, s.pos[r], t

    # ------------------------------------------------------------------ merge and expiry
    def _merge(self, t: float) -> None:
        """Merge global tracks that moved together ``merge_s`` with no camera seeing both."""
        cfg = self.config
        s = self._s
        act = np.flatnonzero(s.placed[: s.n] & (t - s.time[: s.n] <= cfg.latency_s + 0.2))
        close: set[tuple[int, int]] = set()
        if act.size >= 2:
            pos = s.pos[act]
            d2 = ((pos[:, None] - pos[None]) ** 2).sum(axis=2)
            ia, ib = np.nonzero(np.triu(d2 <= cfg.merge_m**2, 1))
            if ia.size:
                ra, rb = act[ia], act[ib]
                win = cfg.active_s
                ta, tb = s.seen_t[ra], s.seen_t[rb]
                conflict = (
                    (s.seen_lid[ra] != s.seen_lid[rb]) & (t - ta <= win) & (t - tb <= win)
                ).any(axis=1)
                dead: set[int] = set()
                for a, b, c in zip(ra.tolist(), rb.tolist(), conflict.tolist(), strict=True):
                    if a in dead or b in dead:
                        continue
                    ga, gb = int(s.gid[a]), int(s.gid[b])
                    key = (min(ga, gb), max(ga, gb))
                    if c:
                        self._together.pop(key, None)
                        continue
                    since = self._together.setdefault(key, t)
                    close.add(key)
                    if t - since >= cfg.merge_s:
                        keep, drop = (a, b) if s.first[a] <= s.first[b] else (b, a)
                        self._absorb(keep, drop)
                        dead.add(drop)
                        close.discard(key)
                        del self._together[key]
                if dead:
                    mask = np.ones(s.n, bool)
                    mask[list(dead)] = False
                    s.keep(mask)
        # forget pairs that drifted apart (or whose tracks are gone)
        for key in [k for k in self._together if k not in close]:
            ra, rb = s.row.get(key[0]), s.row.get(key[1])
            if (
                ra is None
                or rb is None
                or float(np.sum((s.pos[ra] - s.pos[rb]) ** 2)) > cfg.merge_m**2
            ):
                del self._together[key]

    def _absorb(self, keep: int, drop: int) -> None:
        s = self._s
        kg, dg = int(s.gid[keep]), int(s.gid[drop])
        for key, (gid, ts) in self._links.items():
            if gid == dg:
                self._links[key] = (kg, ts)
        newer = s.seen_t[drop] > s.seen_t[keep]
        s.seen_t[keep, newer] = s.seen_t[drop, newer]
        s.seen_lid[keep, newer] = s.seen_lid[drop, newer]
        s.pos[keep] = 0.5 * (s.pos[keep] + s.pos[drop])
        s.time[keep] = max(s.time[keep], s.time[drop])
        s.hits[keep] += s.hits[drop]

    def _expire(self, now: float) -> None:
        """Forget lost tracks and local links past ``max_lost_s`` (memory stays bounded)."""
        s = self._s
        limit = min(now, self.clock) - self.config.max_lost_s
        old = s.time[: s.n] < limit
        if old.any():
            s.keep(~old)
            self._together = {
                k: v for k, v in self._together.items() if k[0] in s.row and k[1] in s.row
            }
        if self._links and limit - self._links_swept >= 1.0:  # links: swept once a second
            self._links_swept = limit
            self._links = {k: v for k, v in self._links.items() if v[1] >= limit}
