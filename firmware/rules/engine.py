"""The rule engine: tracks in, explained events out, one call per frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from firmware.config.schema import VigilConfig
from firmware.events.records import Event
from firmware.inputs.records import InputRecord
from firmware.rules.base import FrameContext, Rule, RuleEnv
from firmware.rules.memory import TrackMemory
from firmware.rules.motion import MOTION_WINDOW_S
from firmware.rules.situations import Situations
from firmware.rules.zones import LineSet, ZoneSet, foot_points
from firmware.types import PERSON, Tracks


def _rule_classes() -> dict[str, type[Rule]]:
    from firmware.rules.fall import Fall
    from firmware.rules.fight import Fight
    from firmware.rules.left_object import LeftObject
    from firmware.rules.loitering import Loitering
    from firmware.rules.motion import GrabAndRun, Running
    from firmware.rules.occupancy import Crowding, Footfall, Intrusion
    from firmware.rules.store import EasExit, FireExitOpen, Panic, TillUnattended

    classes = (
        # Fight runs before running: people leaving a fight are held to a lower speed.
        Loitering, GrabAndRun, Fight, Running, Fall, LeftObject, Crowding, Intrusion, Footfall,
        EasExit, TillUnattended, FireExitOpen, Panic,
    )  # fmt: skip
    return {c.name: c for c in classes}


def _local_clock(tz_name: str, start: datetime | None) -> Callable[[float], datetime]:
    """Stream timestamp -> local time: ``start`` plus the timestamp when a start is given;
    else the timestamp itself when it looks like Unix time; else the current time."""
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"site.timezone {tz_name!r} is not a known IANA time zone") from None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=tz)

    def clock(t: float) -> datetime:
        if start is not None:
            return (start + timedelta(seconds=t)).astimezone(tz)
        if t > 1e9:
            return datetime.fromtimestamp(t, tz)
        return datetime.now(tz)

    return clock


class RuleEngine:
    """Runs every enabled rule of the site config over each frame's tracks.

    ``update`` returns the events of this frame (start/update/end of situations, instant
    events); ``close`` ends every open situation at the end of a stream.
    """

    def __init__(
        self,
        cfg: VigilConfig,
        frame_size: tuple[int, int],
        fps: float = 25.0,
        *,
        wall_clock_start: datetime | None = None,
        forget_s: float = 5.0,
    ):
        w, h = frame_size
        if w <= 0 or h <= 0:
            raise ValueError(f"frame size must be positive, got {w}x{h}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.cfg = cfg
        self.fps = float(fps)
        self.frame_size = (int(w), int(h))
        self.forget_s = float(forget_s)
        self.clock = _local_clock(cfg.site.timezone, wall_clock_start)
        self._build()
        self._last: tuple[float, int] | None = None

    def _build(self, unit_armed: bool | None = None, zone_armed: np.ndarray | None = None) -> None:
        """Fresh per-stream state: track memory, zones, situations, rules."""
        cfg = self.cfg
        self.mem = TrackMemory(
            history=max(8, int(round(self.fps * 4.0))),
            height_window=int(round(MOTION_WINDOW_S * self.fps)) + 1,
        )
        zones = ZoneSet(cfg.zones, self.frame_size, self.mem, cfg.rules.loitering.return_window_s)
        if zone_armed is not None:
            zones.armed[:] = zone_armed
        lines = LineSet(cfg.lines, self.frame_size)
        self.env = RuleEnv(
            self.mem,
            zones,
            lines,
            self.fps,
            self.frame_size,
            cfg.schedule,
            self.clock,
            unit_armed,
            inputs=dict(cfg.inputs),
            till=cfg.till,
        )
        self.sits = Situations()
        self._p_slots = np.empty(0, np.int64)  # people of the last frame (zone_figures)
        from firmware.rules.store import InputRecords

        self.rules: list[Rule] = [InputRecords(None, self.env)]
        for name, cls in _rule_classes().items():
            rcfg = getattr(cfg.rules, name)
            if rcfg.enabled:
                self.rules.append(cls(rcfg, self.env))

    @property
    def zones(self) -> ZoneSet:
        return self.env.zones

    def update(
        self,
        tracks: Tracks,
        timestamp: float,
        frame_index: int,
        inputs: Sequence[InputRecord] = (),
    ) -> list[Event]:
        """Feed one frame's tracks (and the store-system records that arrived since the last
        frame, on the frame clock); returns the events this frame produced.

        Time going backwards (a replayed clip starting over) ends every open situation and
        starts afresh, so no situation spans two passes."""
        t = float(timestamp)
        restarted: list[Event] = []
        if self._last is not None and t < self._last[0]:
            restarted = self.close(*self._last)
            self._build(self.env.unit_armed, self.env.zones.armed.copy())
        self._last = (t, int(frame_index))
        mem = self.mem
        ids = np.asarray(tracks.ids, np.int64)
        boxes = np.asarray(tracks.boxes, np.float64).reshape(-1, 4)
        classes = np.asarray(tracks.classes, np.int16)
        slots = mem.slots_for(ids, t)
        mem.push(slots, boxes, classes, t)
        people = np.nonzero(classes == PERSON)[0]
        p_slots = slots[people]
        p_boxes = boxes.take(people, axis=0)  # take: faster than fancy row indexing
        p_feet = foot_points(p_boxes)
        entered, exited = self.env.zones.update(p_slots, p_feet, t)
        self._p_slots = p_slots
        ctx = FrameContext(
            t=t,
            frame=int(frame_index),
            slots=slots,
            boxes=boxes,
            classes=classes,
            ids=ids,
            keypoints=tracks.keypoints,
            people=people,
            p_slots=p_slots,
            p_ids=ids[people],
            p_boxes=p_boxes,
            p_feet=p_feet,
            p_heights=p_boxes[:, 3] - p_boxes[:, 1],
            entered=entered,
            exited=exited,
            mem=mem,
            zones=self.env.zones,
            inputs=inputs,
        )
        for rule in self.rules:
            rule.update(ctx, self.sits)
        self.sits.sweep(t, ctx.frame)
        mem.expire(t, self.forget_s)
        return restarted + self.sits.take()

    def close(self, timestamp: float, frame_index: int) -> list[Event]:
        """End every open situation (end of stream or shutdown); send partial summaries."""
        for rule in self.rules:
            flush = getattr(rule, "flush", None)
            if flush is not None:
                flush(float(timestamp), int(frame_index), self.sits)
        self.sits.close_all(float(timestamp), int(frame_index))
        return self.sits.take()

    def zone_figures(self) -> dict[str, dict[str, Any]]:
        """Per zone: people in it on the last frame (with inertia) and whether it is armed,
        for the hub's metrics (``metrics.zones`` in docs/mqtt.md)."""
        zones = self.env.zones
        if not len(zones):
            return {}
        counts = self.mem.z_member.take(self._p_slots, axis=0).sum(axis=0).tolist()
        return {
            name: {"people": int(counts[i]), "armed": bool(zones.armed[i])}
            for i, name in enumerate(zones.names)
        }

    @property
    def unit_armed(self) -> bool | None:
        """Hub override of the schedule: True armed, False disarmed, None follow it."""
        return self.env.unit_armed

    def set_armed(self, zone: str | None, armed: bool | None) -> None:
        """Hub arm/disarm: the whole unit (``zone=None``) or one zone by name.

        The unit armed watches its armed zones for intrusion whatever the schedule; disarmed
        it does not; ``None`` goes back to the schedule. The other rules always run."""
        if zone is None:
            self.env.unit_armed = None if armed is None else bool(armed)
            return
        idx = self.env.zones.index.get(zone)
        if idx is None:
            known = ", ".join(self.env.zones.names) or "none configured"
            raise ValueError(f"unknown zone {zone!r} (zones: {known})")
        self.env.zones.armed[idx] = bool(armed)
