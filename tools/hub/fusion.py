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
    _vel_pos: np.ndarray | None = None
    _vel_time: float = 0.0
    _together: dict[int, float] = field(default_factory=dict)  # other gid -> since when close


class Fusion:
    """Online multi-camera fusion; see the module docstring."""

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config if config is not None else FusionConfig()
        self._queue: list[tuple[float, int, Observation]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._tracks: dict[int, GlobalTrack] = {}
        self._spread: dict[str, collections.deque] = {}  # unit -> recent cross-view distances
        self._gates: dict[str, float] = {}  # unit -> median of its recent cross-view distances
        self._links: dict[tuple[str, int], tuple[int, float]] = {}  # (unit, local) -> (gid, time)
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
        """Handle every queued unit-frame up to ``now - latency_s``; their assignments."""
        out: list[Assignment] = []
        horizon = now - self.config.latency_s
        while self._queue and self._queue[0][0] <= horizon:
            _, _, obs = heapq.heappop(self._queue)
            out.extend(self._handle(obs))
        self._expire(now)
        return out

    def flush(self) -> list[Assignment]:
        """Handle everything queued (end of a replay)."""
        return self.step(np.inf) if self._queue else []

    def tracks(self, max_age_s: float | None = None) -> list[GlobalTrack]:
        """Global tracks seen within ``max_age_s`` of the fusion clock (default ``active_s``)."""
        age = self.config.active_s if max_age_s is None else max_age_s
        return [t for t in self._tracks.values() if self.clock - t.time <= age]

    def store_tracks(self) -> bytes:
        """CBOR ``store-tracks`` message (docs/mqtt.md) of the tracks seen within ``active_s``."""
        out = []
        for g in self.tracks():
            placed = g.placed and bool(np.isfinite(g.pos).all())
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
        return len(self._tracks), len(self._links), len(self._queue)

    # ------------------------------------------------------------------ one unit-frame
    def _handle(self, obs: Observation) -> list[Assignment]:
        t = obs.time
        if t < self.clock:
            self.late += 1
        self.clock = max(self.clock, t)
        gids = np.zeros(obs.local_ids.size, np.int64)
        placed = np.isfinite(obs.xy).all(axis=1)
        for i in np.flatnonzero(~placed):  # uncalibrated camera: one id per local track
            gids[i] = self._unplaced(obs.unit, int(obs.local_ids[i]), t)
        idx = np.flatnonzero(placed)
        if idx.size:
            gids[idx] = self._match(obs.unit, obs.local_ids[idx], obs.xy[idx], t)
        for lid, gid in zip(obs.local_ids, gids, strict=True):
            self._links[(obs.unit, int(lid))] = (int(gid), t)
        return [
            Assignment(obs.unit, obs.frame, t, int(lid), int(gid))
            for lid, gid in zip(obs.local_ids, gids, strict=True)
        ]

    def _match(self, unit: str, lids: np.ndarray, xy: np.ndarray, t: float) -> np.ndarray:
        cfg = self.config
        cands = [g for g in self._tracks.values() if g.placed]
        out = np.zeros(lids.size, np.int64)
        taken: set[int] = set()
        if cands:
            age = np.array([t - g.time for g in cands])
            pos = np.array([g.pos for g in cands])
            vel = np.array([g.vel for g in cands])
            pred = pos + vel * np.clip(age, 0.0, cfg.active_s)[:, None]
            dist = np.linalg.norm(xy[:, None, :] - pred[None], axis=2)
            gids = np.array([g.gid for g in cands])
            carried = np.array([self._links.get((unit, int(lid)), (0, 0.0))[0] for lid in lids])
            linked = carried[:, None] == gids[None, :]
            active = age <= cfg.active_s
            gate, bonus = self._gate(unit, cands, dist, t)
            ok = (dist <= gate) & active[None, :]
            cost = np.where(ok, dist - bonus * linked, _BIG)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] < _BIG:
                    out[r] = cands[c].gid
                    taken.add(cands[c].gid)
                    self._update(cands[c], xy[r], t, unit, int(lids[r]))
            # a lost person is re-found only where exactly one lost track is plausible
            lost = [
                j
                for j, g in enumerate(cands)
                if not active[j] and g.gid not in taken and age[j] <= cfg.max_lost_s
            ]
            for r in np.flatnonzero(out == 0):
                reach = [j for j in lost if dist[r, j] <= gate + cfg.walk_mps * age[j]]
                if len(reach) == 1 and not self._seen_elsewhere(cands[reach[0]], unit, t):
                    g = cands[reach[0]]
                    out[r] = g.gid
                    lost.remove(reach[0])
                    self._update(g, xy[r], t, unit, int(lids[r]), jump=True)
        for r in np.flatnonzero(out == 0):
            g = self._new(xy[r], t)
            out[r] = g.gid
            self._update(g, xy[r], t, unit, int(lids[r]), jump=True)
        self._merge(t)
        return out

    def _gate(
        self, unit: str, cands: list[GlobalTrack], dist: np.ndarray, t: float
    ) -> tuple[float, float]:
        """This unit's gate and link bonus: learnt from how far its foot points land from
        people other cameras see now (the median nearest distance: calibration quality)."""
        cfg = self.config
        hist = self._spread.setdefault(unit, collections.deque(maxlen=300))
        others = np.array([self._seen_elsewhere(g, unit, t, 0.3) for g in cands])
        if others.any():
            hist.extend(dist[:, others].min(axis=1).tolist())
            self._gates[unit] = float(np.median(hist))
        if len(hist) < 50:
            return cfg.gate_m, cfg.link_bonus_m
        gate = float(np.clip(cfg.gate_spread * self._gates[unit], cfg.gate_m, cfg.gate_max_m))
        return gate, cfg.bonus_share * gate

    def _seen_elsewhere(
        self, g: GlobalTrack, unit: str, t: float, within: float | None = None
    ) -> bool:
        win = self.config.active_s if within is None else within
        return any(u != unit and abs(t - ts) <= win for u, (_, ts) in g.seen_by.items())

    def _unplaced(self, unit: str, lid: int, t: float) -> int:
        gid = self._links.get((unit, lid), (0, 0.0))[0]
        g = self._tracks.get(gid)
        if g is None:
            g = self._new(np.zeros(2), t)
            g.placed = False
        g.time, g.hits = t, g.hits + 1
        g.seen_by[unit] = (lid, t)
        return g.gid

    def _new(self, xy: np.ndarray, t: float) -> GlobalTrack:
        g = GlobalTrack(next(self._ids), np.array(xy, float), np.zeros(2), t, t)
        self._tracks[g.gid] = g
        return g

    def _update(
        self, g: GlobalTrack, z: np.ndarray, t: float, unit: str, lid: int, jump: bool = False
    ) -> None:
        cfg = self.config
        dt = max(0.0, t - g.time)
        pred = g.pos + g.vel * min(dt, cfg.active_s)
        g.pos = z.copy() if jump else pred + cfg.gain * (z - pred)
        g.time = max(g.time, t)
        g.hits += 1
        g.seen_by[unit] = (lid, t)
        if g._vel_pos is None or jump:
            g._vel_pos, g._vel_time = g.pos.copy(), t
            if jump:
                g.vel = np.zeros(2)
        elif t - g._vel_time >= 0.2:
            v = (g.pos - g._vel_pos) / (t - g._vel_time)
            g.vel = 0.5 * g.vel + 0.5 * v
            speed = float(np.linalg.norm(g.vel))
            if speed > cfg.max_speed_mps:
                g.vel *= cfg.max_speed_mps / speed
            g._vel_pos, g._vel_time = g.pos.copy(), t

    # ------------------------------------------------------------------ merge and expiry
    def _merge(self, t: float) -> None:
        """Merge global tracks that moved together ``merge_s`` with no camera seeing both."""
        cfg = self.config
        act = [g for g in self._tracks.values() if g.placed and t - g.time <= cfg.latency_s + 0.2]
        if len(act) < 2:
            return
        pos = np.array([g.pos for g in act])
        d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
        for a, b in zip(*np.nonzero(np.triu(d <= cfg.merge_m, 1)), strict=True):
            ga, gb = act[a], act[b]
            if ga.gid not in self._tracks or gb.gid not in self._tracks:
                continue
            if self._conflict(ga, gb, t):
                ga._together.pop(gb.gid, None)
                continue
            since = ga._together.setdefault(gb.gid, t)
            if t - since >= cfg.merge_s:
                keep, drop = (ga, gb) if ga.first_time <= gb.first_time else (gb, ga)
                self._absorb(keep, drop)
        for g in act:  # forget pairs that drifted apart
            for other in list(g._together):
                o = self._tracks.get(other)
                if o is None or np.linalg.norm(o.pos - g.pos) > cfg.merge_m:
                    del g._together[other]

    def _conflict(self, a: GlobalTrack, b: GlobalTrack, t: float) -> bool:
        """True if some camera sees both as two people at about the same time."""
        win = self.config.active_s
        for unit, (lid_a, ta) in a.seen_by.items():
            if unit in b.seen_by:
                lid_b, tb = b.seen_by[unit]
                if lid_a != lid_b and t - ta <= win and t - tb <= win:
                    return True
        return False

    def _absorb(self, keep: GlobalTrack, drop: GlobalTrack) -> None:
        for key, (gid, ts) in self._links.items():
            if gid == drop.gid:
                self._links[key] = (keep.gid, ts)
        for unit, seen in drop.seen_by.items():
            if unit not in keep.seen_by or keep.seen_by[unit][1] < seen[1]:
                keep.seen_by[unit] = seen
        keep.pos = 0.5 * (keep.pos + drop.pos)
        keep.time = max(keep.time, drop.time)
        keep.hits += drop.hits
        del self._tracks[drop.gid]

    def _expire(self, now: float) -> None:
        """Forget lost tracks and local links past ``max_lost_s`` (memory stays bounded)."""
        limit = min(now, self.clock) - self.config.max_lost_s
        for gid in [g.gid for g in self._tracks.values() if g.time < limit]:
            del self._tracks[gid]
        for key in [k for k, (_, ts) in self._links.items() if ts < limit]:
            del self._links[key]
