"""What every rule sees: the engine's shared state and this frame's tracks, precomputed once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from firmware.events.records import Severity
from firmware.inputs.config import ContactInputConfig, TillConfig
from firmware.inputs.records import InputRecord
from firmware.rules.config import ScheduleConfig
from firmware.rules.memory import TrackMemory
from firmware.rules.situations import Situations
from firmware.rules.zones import LineSet, ZoneSet

STAGES = {"notice": Severity.NOTICE, "warn": Severity.WARN, "alert": Severity.ALERT}


@dataclass(slots=True)
class RuleEnv:
    """Engine state shared by the rules (built once)."""

    mem: TrackMemory
    zones: ZoneSet
    lines: LineSet
    fps: float
    frame_size: tuple[int, int]
    schedule: ScheduleConfig
    clock: Callable[[float], datetime]  # stream timestamp -> local wall-clock time
    unit_armed: bool | None = None  # hub override: None = follow the schedule
    inputs: dict[str, ContactInputConfig] = field(default_factory=dict)  # [inputs.*]
    till: TillConfig | None = None  # [till]


@dataclass(slots=True)
class FrameContext:
    """This frame's tracks: slots in the memory, boxes and derived quantities.

    ``people`` indexes the person tracks among all; ``p_*`` arrays are for people only.
    """

    t: float
    frame: int
    slots: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    ids: np.ndarray
    keypoints: np.ndarray | None
    people: np.ndarray
    p_slots: np.ndarray
    p_ids: np.ndarray
    p_boxes: np.ndarray
    p_feet: np.ndarray
    p_heights: np.ndarray
    entered: np.ndarray  # (P,Z) bool, people only
    exited: np.ndarray
    mem: TrackMemory
    zones: ZoneSet
    inputs: Sequence[InputRecord] = ()  # store-system records since the last frame
    cache: dict[Any, Any] = field(default_factory=dict)

    def speeds(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """People's velocity over ``n`` frames (heights/s) and height, computed once per
        frame and window."""
        key = ("speeds", n)
        if key not in self.cache:
            self.cache[key] = speeds(self.mem, self.p_slots, n)
        return self.cache[key]

    def inside(self, frame_size: tuple[int, int]) -> np.ndarray:
        """(P,) people whose box is wholly in the image, computed once per frame."""
        if "inside" not in self.cache:
            self.cache["inside"] = inside_image(self.p_boxes, frame_size)
        return self.cache["inside"]

    def member(self, cols: np.ndarray | None = None) -> np.ndarray:
        """(P,Z) bool: people in each zone (with inertia), gathered once per frame; ``cols``
        picks zones (None or every zone: no copy)."""
        if "member" not in self.cache:
            self.cache["member"] = self.mem.z_member.take(self.p_slots, axis=0)
        m = self.cache["member"]
        if cols is None or (len(cols) == m.shape[1] and _is_identity(cols)):
            return m
        return m.take(cols, axis=1)  # take: faster than fancy column indexing

    def occupancy(self, cols: np.ndarray | None = None) -> np.ndarray:
        """(Z,) people in each zone (``cols`` as in :meth:`member`), summed once per frame
        over every zone."""
        m = self.member(cols)
        if m is not self.cache["member"]:
            return m.sum(axis=0)
        if "occupancy" not in self.cache:
            self.cache["occupancy"] = m.sum(axis=0)
        return self.cache["occupancy"]

    def dwell(self) -> np.ndarray:
        """(P,Z) seconds in each zone (see ZoneSet.dwell), computed once per frame."""
        if "dwell" not in self.cache:
            self.cache["dwell"] = self.zones.dwell(self.p_slots, self.t)
        return self.cache["dwell"]


class Rule:
    """A small state machine over tracks; ``update`` reports situations to ``sits``."""

    name: ClassVar[str]

    def __init__(self, cfg: Any, env: RuleEnv):
        self.cfg = cfg
        self.env = env

    def update(self, ctx: FrameContext, sits: Situations) -> None:
        raise NotImplementedError


def speeds(mem: TrackMemory, slots: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-centre velocity over the last ``n`` recorded frames, in person heights per second,
    and the person's mean box height over them (px). Velocity (S,2); NaN where fewer than 2
    frames are known."""
    n = min(n, mem.history)
    ptr = mem.ptr[slots]
    known = mem.hist_n[slots]
    k = np.minimum(np.maximum(known - 1, 0), n - 1)  # np.clip costs more on small arrays
    b1 = mem.hist_box[slots, ptr]
    i0 = (ptr - k) % mem.history
    b0 = mem.hist_box[slots, i0]
    dt = mem.last_t[slots] - mem.hist_t[slots, i0]  # last_t: the time at ptr, gathered in 1-D
    if n == mem.height_window:
        h = mem.hsum[slots] / np.maximum(np.minimum(known, n), 1)
    else:
        idx = (ptr[:, None] - np.arange(n)[None, :]) % mem.history
        hb = mem.hist_box[slots[:, None], idx]
        valid = np.arange(n)[None, :] < known[:, None]
        h = np.where(valid, hb[..., 3] - hb[..., 1], 0.0).sum(axis=1) / np.maximum(
            valid.sum(axis=1), 1
        )
    ok = dt > 0
    denom = np.where(ok, dt * np.maximum(h, 1.0), 1.0)
    v = ((b1[:, :2] + b1[:, 2:]) - (b0[:, :2] + b0[:, 2:])) * 0.5 / denom[:, None]
    if not ok.all():
        v[~ok] = np.nan
    return v, h


def inside_image(boxes: np.ndarray, frame_size: tuple[int, int], margin: float = 1.0) -> np.ndarray:
    """(N,) bool: the box is not cut by the image border (a cut box shows part of a person,
    and its centre moves as they come into view)."""
    w, h = frame_size
    return (
        (boxes[:, 0] > margin)
        & (boxes[:, 1] > margin)
        & (boxes[:, 2] < w - margin)
        & (boxes[:, 3] < h - margin)
    )


def _is_identity(cols: np.ndarray) -> bool:
    """``cols`` lists every zone in config order (a rule naming all zones, reordered or with a
    name twice, must not get the unpermuted columns)."""
    return bool((cols == np.arange(len(cols))).all())
