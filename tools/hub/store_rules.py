"""Store-level rules on global identities (fusion's ``GlobalTrack``), explainable like the unit's.

Each rule takes the live global tracks and the fusion clock (``update(tracks, t)``) and
returns unit-contract ``Event`` records (``track_ids`` = global ids, ``floor`` = their fused
positions, ``explain`` = the measured values and the thresholds). Zones are polygons on the
floor plan, in metres. What a single unit cannot see is the point: dwell counted over every
camera (``StoreLoitering``), a dwell seen by one camera and the dash out by another
(``StoreGrabAndRun``), and a person coming back to a high-value zone (``StoreReturnVisit``).
Config: ``[[zones]]`` and ``[rules.*]`` in the hub's ``--store`` file (docs/store.md).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Annotated, Literal, Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from firmware.events.records import Event, EventPhase, Severity
from tools.hub.fusion import GlobalTrack

SEEN_S = 1.0  # a unit "sees" a person when it reported them within this long of their last fix
EXIT_PURPOSES = ("exit", "entrance", "fire_exit")


# ---------------------------------------------------------------------------- config
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Seconds = Annotated[float, Field(gt=0, le=86400)]


class StoreZoneConfig(_Strict):
    """A zone drawn on the floor plan (metres, the units' ``[camera.floor]`` coordinates)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="zone name")
    polygon: list[tuple[float, float]] = Field(
        ..., min_length=3, description="three or more [x, y] corners in metres on the plan"
    )
    purpose: Literal["general", "high_value", "exit", "entrance", "fire_exit"] = Field(
        "general", description="high_value zones feed grab-and-run and return visits"
    )

    @field_validator("polygon")
    @classmethod
    def _area(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        p = np.asarray(v, np.float64)
        if not np.isfinite(p).all():
            raise ValueError("corners must be finite numbers (metres)")
        x, y = p[:, 0], p[:, 1]
        if abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2 < 0.01:
            raise ValueError("polygon has no area (under 0.01 m^2): corners collinear?")
        return v


class LoiteringConfig(_Strict):
    enabled: bool = Field(True, description="run store loitering")
    zones: list[str] | None = Field(None, description="zones watched; default every zone")
    loiter_s: Seconds = Field(60.0, description="dwell in one zone, over all cameras, that fires")
    gap_s: Annotated[float, Field(gt=0, le=600)] = Field(
        3.0, description="out of the zone (or unseen) this long starts the dwell again"
    )


class GrabAndRunConfig(_Strict):
    enabled: bool = Field(True, description="run store grab-and-run")
    zones: list[str] | None = Field(None, description="dwell zones; default every high_value zone")
    exits: list[str] | None = Field(
        None, description="exit zones; default every zone of purpose exit, entrance or fire_exit"
    )
    min_dwell_s: Seconds = Field(3.0, description="time at the high-value zone before the dash")
    window_s: Seconds = Field(10.0, description="the dash must come within this of leaving it")
    min_speed_mps: Annotated[float, Field(gt=0, le=12)] = Field(
        2.0, description="floor speed that counts as a dash, m/s (a walk is 1.0-1.5)"
    )
    speed_window_s: Annotated[float, Field(gt=0, le=5)] = Field(
        1.0, description="speed is the displacement over at least this long (smooths jitter)"
    )
    towards_cos: Annotated[float, Field(ge=-1, le=1)] = Field(
        0.5, description="cosine to the nearest exit above which the dash is towards it"
    )
    other_camera: bool = Field(
        True,
        description="fire only when a camera that did not see the dwell sees the dash (the unit's own rule covers one camera)",
    )


class ReturnVisitConfig(_Strict):
    enabled: bool = Field(True, description="run store return visits")
    zones: list[str] | None = Field(
        None, description="zones watched; default every high_value zone"
    )
    min_dwell_s: Seconds = Field(2.0, description="a visit counts once the person stayed this long")
    min_away_s: Seconds = Field(
        10.0, description="out of the zone (or unseen) this long ends a visit"
    )
    window_s: Seconds = Field(
        300.0, description="a new visit this soon after the end of the last one fires"
    )


class StoreRulesConfig(_Strict):
    loitering: LoiteringConfig = Field(default_factory=LoiteringConfig)
    grab_and_run: GrabAndRunConfig = Field(default_factory=GrabAndRunConfig)
    return_visit: ReturnVisitConfig = Field(default_factory=ReturnVisitConfig)


def check_rules(zones: list[StoreZoneConfig], rules: StoreRulesConfig) -> None:
    """Cross checks: unique zone names, rules naming zones that exist; ValueError names the key."""
    names = [z.name for z in zones]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"zones: duplicate name(s) {', '.join(dup)}")
    for rule, key in (
        ("loitering", "zones"),
        ("grab_and_run", "zones"),
        ("grab_and_run", "exits"),
        ("return_visit", "zones"),
    ):
        for n in getattr(getattr(rules, rule), key) or []:
            if n not in names:
                known = ", ".join(names) or "none defined"
                raise ValueError(f"rules.{rule}.{key}: unknown zone {n!r} (zones: {known})")


# ---------------------------------------------------------------------------- zones
@dataclass
class StoreZone:
    """A zone drawn on the floor plan: polygon in metres."""

    name: str
    polygon: list[tuple[float, float]]
    purpose: str = "general"

    def contains(self, xy: np.ndarray) -> bool:
        return self.distance(xy) >= 0

    def distance(self, xy: np.ndarray) -> float:
        """Signed distance (m) to the edge: positive inside."""
        poly = np.asarray(self.polygon, np.float32).reshape(-1, 1, 2)
        return cv2.pointPolygonTest(poly, (float(xy[0]), float(xy[1])), True)

    @property
    def centre(self) -> np.ndarray:
        return np.asarray(self.polygon, np.float64).mean(axis=0)


def _pick(zones: list[StoreZone], names: list[str] | None, purposes: tuple[str, ...]):
    if names is not None:
        return [z for z in zones if z.name in names]
    return [z for z in zones if z.purpose in purposes]


def units_seeing(g: GlobalTrack) -> list[str]:
    """The units that reported this person within ``SEEN_S`` of their latest fix."""
    return sorted(u for u, (_, ts) in g.seen_by.items() if g.time - ts <= SEEN_S)


def _floor(g: GlobalTrack) -> list[dict]:
    return [{"id": int(g.gid), "floor": [round(float(c), 2) for c in g.pos]}]


class StoreRule(Protocol):
    def update(self, tracks: list[GlobalTrack], t: float) -> list[Event]: ...


# ---------------------------------------------------------------------------- loitering
@dataclass
class StoreLoitering:
    """Loitering on global ids: dwell in a store zone summed over all cameras' sightings."""

    zones: list[StoreZone]
    loiter_s: float = 60.0
    gap_s: float = 3.0  # a person out of the zone (or unseen) this long starts again
    _dwell: dict[tuple[int, str], list[float]] = field(default_factory=dict)  # start, last, fired

    def update(self, tracks: list[GlobalTrack], t: float) -> list[Event]:
        out = []
        for g in tracks:
            if not g.on_floor:
                continue
            for z in self.zones:
                key = (g.gid, z.name)
                if not z.contains(g.pos):
                    continue
                d = self._dwell.get(key)
                if d is None or t - d[1] > self.gap_s:
                    d = self._dwell[key] = [t, t, 0.0]
                d[1] = t
                if not d[2] and t - d[0] >= self.loiter_s:
                    d[2] = 1.0
                    out.append(self._event(g, z, d, t))
        for key in [k for k, d in self._dwell.items() if t - d[1] > self.gap_s]:
            del self._dwell[key]
        return out

    def _event(self, g: GlobalTrack, z: StoreZone, d: list[float], t: float) -> Event:
        return Event(
            type="loitering",
            rule="store_loitering",
            phase=EventPhase.START,
            severity=Severity.WARN,
            start_time=d[0],
            start_frame=0,
            time=t,
            frame=0,
            zone=z.name,
            track_ids=[g.gid],
            floor=_floor(g),
            explain={
                "dwell_s": round(t - d[0], 2),
                "threshold_s": self.loiter_s,
                "global_id": g.gid,
                "units": sorted(g.seen_by),
                "floor": [round(float(c), 2) for c in g.pos],
            },
        )


# ---------------------------------------------------------------------------- grab-and-run
@dataclass
class _Dash:
    """One person's grab-and-run state: the current dwell, the last qualified one, recent fixes."""

    fixes: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64))
    zone: str | None = None  # the high-value zone they are in now
    enter_t: float = 0.0
    units: set[str] = field(default_factory=set)  # cameras that saw this dwell
    dwelt: tuple[str, float, float, list[str]] | None = None  # zone, dwell_s, left_t, units
    last_t: float = -np.inf


class StoreGrabAndRun:
    """Dwell in a high-value zone, then within ``window_s`` a dash (floor speed, m/s) into an
    exit zone or towards the nearest one, the dash seen by a camera that did not see the dwell."""

    def __init__(self, zones: list[StoreZone], cfg: GrabAndRunConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else GrabAndRunConfig()
        self.cols = _pick(zones, self.cfg.zones, ("high_value",))
        self.exits = _pick(zones, self.cfg.exits, EXIT_PURPOSES)
        self._state: dict[int, _Dash] = {}

    def update(self, tracks: list[GlobalTrack], t: float) -> list[Event]:
        out = []
        for g in tracks:
            if not self.cols or not g.on_floor:
                continue
            s = self._state.setdefault(g.gid, _Dash())
            if g.time <= s.last_t:
                continue  # no new fix since the last tick
            s.last_t = g.time
            s.fixes.append((g.time, g.pos.copy()))
            ev = self._fix(g, s)
            if ev is not None:
                out.append(ev)
        keep = self.cfg.window_s + self.cfg.speed_window_s
        for gid in [k for k, s in self._state.items() if t - s.last_t > keep]:
            del self._state[gid]
        return out

    def _fix(self, g: GlobalTrack, s: _Dash) -> Event | None:
        cfg, now = self.cfg, g.time
        seeing = units_seeing(g)
        inside = next((z for z in self.cols if z.contains(g.pos)), None)
        if inside is not None:
            if s.zone != inside.name:
                s.zone, s.enter_t, s.units = inside.name, now, set()
            s.units.update(seeing)
            if now - s.enter_t >= cfg.min_dwell_s:
                s.dwelt = (inside.name, now - s.enter_t, now, sorted(s.units))
            return None
        s.zone = None
        if s.dwelt is None or now - s.dwelt[2] > cfg.window_s:
            return None
        speed, heading = self._speed(s)
        if speed < cfg.min_speed_mps:
            return None
        exit_zone, cos, in_exit = None, None, False
        if self.exits:
            exit_zone = max(self.exits, key=lambda z: z.distance(g.pos))  # nearest (or inside)
            in_exit = exit_zone.contains(g.pos)
            if not in_exit:
                to = exit_zone.centre - g.pos
                cos = float(np.dot(to, heading) / max(np.linalg.norm(to) * speed, 1e-9))
                if cos < cfg.towards_cos:
                    return None
        zone, dwell_s, left_t, dwell_units = s.dwelt
        others = sorted(set(seeing) - set(dwell_units))
        if cfg.other_camera and not others:
            return None  # one camera saw it all: the unit's own grab_and_run reports it
        s.dwelt = None  # once per dwell
        return Event.instant(
            now,
            0,
            type="grab_and_run",
            rule="store_grab_and_run",
            severity=Severity.ALERT,
            zone=zone,
            track_ids=[g.gid],
            floor=_floor(g),
            explain={
                "global_id": g.gid,
                "dwell_s": round(dwell_s, 2),
                "min_dwell_s": cfg.min_dwell_s,
                "seconds_since_zone": round(now - left_t, 2),
                "window_s": cfg.window_s,
                "speed_mps": round(speed, 2),
                "min_speed_mps": cfg.min_speed_mps,
                "exit": exit_zone.name if exit_zone is not None else None,
                "in_exit_zone": in_exit,
                "towards_exit_cos": None if cos is None else round(cos, 3),
                "towards_cos": cfg.towards_cos,
                "dwell_units": dwell_units,
                "exit_units": seeing,
            },
        )

    def _speed(self, s: _Dash) -> tuple[float, np.ndarray]:
        """Floor speed (m/s) and velocity since the newest fix at least ``speed_window_s``
        old (or the oldest, when it is at least half that): robust to the tick rate."""
        w = self.cfg.speed_window_s
        t1, p1 = s.fixes[-1]
        t0, p0 = next(((t, p) for t, p in reversed(s.fixes) if t1 - t >= w), s.fixes[0])
        if t1 - t0 < 0.5 * w:
            return 0.0, np.zeros(2)
        v = (p1 - p0) / (t1 - t0)
        return float(np.linalg.norm(v)), v


# ---------------------------------------------------------------------------- return visits
@dataclass
class _Visit:
    enter_t: float
    last_t: float
    units: set[str]
    fired: bool = False


class StoreReturnVisit:
    """A person back in a high-value zone within ``window_s`` of their last visit there (a
    visit: ``min_dwell_s`` inside; away: ``min_away_s`` out of it or unseen)."""

    def __init__(self, zones: list[StoreZone], cfg: ReturnVisitConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else ReturnVisitConfig()
        self.zones = _pick(zones, self.cfg.zones, ("high_value",))
        self._cur: dict[tuple[int, str], _Visit] = {}  # the visit going on (or just ended)
        self._prev: dict[tuple[int, str], _Visit] = {}  # the last qualified visit before it

    def update(self, tracks: list[GlobalTrack], t: float) -> list[Event]:
        cfg, out = self.cfg, []
        for g in tracks:
            if not g.on_floor:
                continue
            for z in self.zones:
                if not z.contains(g.pos):
                    continue
                key, now = (g.gid, z.name), g.time
                cur = self._cur.get(key)
                if cur is None or now - cur.last_t > cfg.min_away_s:  # a new visit
                    if cur is not None and cur.last_t - cur.enter_t >= cfg.min_dwell_s:
                        self._prev[key] = cur
                    cur = self._cur[key] = _Visit(now, now, set())
                cur.last_t = now
                cur.units.update(units_seeing(g))
                prev = self._prev.get(key)
                if (
                    prev is not None
                    and not cur.fired
                    and now - cur.enter_t >= cfg.min_dwell_s
                    and cur.enter_t - prev.last_t <= cfg.window_s
                ):
                    cur.fired = True
                    out.append(self._event(g, z, prev, cur))
        horizon = cfg.window_s + cfg.min_away_s + cfg.min_dwell_s
        for d in (self._cur, self._prev):
            for key in [k for k, v in d.items() if t - v.last_t > horizon]:
                del d[key]
        return out

    def _event(self, g: GlobalTrack, z: StoreZone, prev: _Visit, cur: _Visit) -> Event:
        cfg = self.cfg
        return Event.instant(
            cur.last_t,
            0,
            type="return_visit",
            rule="store_return_visit",
            severity=Severity.WARN,
            zone=z.name,
            track_ids=[g.gid],
            floor=_floor(g),
            explain={
                "global_id": g.gid,
                "first_visit_s": round(prev.last_t - prev.enter_t, 2),
                "away_s": round(cur.enter_t - prev.last_t, 2),
                "dwell_s": round(cur.last_t - cur.enter_t, 2),
                "window_s": cfg.window_s,
                "min_away_s": cfg.min_away_s,
                "min_dwell_s": cfg.min_dwell_s,
                "first_units": sorted(prev.units),
                "units": sorted(cur.units),
            },
        )


# ---------------------------------------------------------------------------- build
def build_rules(zones: list[StoreZoneConfig], rules: StoreRulesConfig) -> list[StoreRule]:
    """The enabled store rules over the configured floor zones."""
    check_rules(zones, rules)
    zs = [StoreZone(z.name, list(z.polygon), z.purpose) for z in zones]
    out: list[StoreRule] = []
    lo = rules.loitering
    if lo.enabled:
        watched = [z for z in zs if lo.zones is None or z.name in lo.zones]
        out.append(StoreLoitering(watched, lo.loiter_s, lo.gap_s))
    if rules.grab_and_run.enabled:
        out.append(StoreGrabAndRun(zs, rules.grab_and_run))
    if rules.return_visit.enabled:
        out.append(StoreReturnVisit(zs, rules.return_visit))
    return out
