"""What every rule sees: the engine's shared state and this frame's tracks, precomputed once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from firmware.events.records import Severity
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
    and the mean box height (px). Velocity (S,2); NaN where fewer than 2 frames are known."""
    boxes, times = mem.window(slots, n)
    first = np.argmax(~np.isnan(times), axis=1)
    rows = np.arange(len(slots))
    b0 = boxes[rows, first]
    b1 = boxes[:, -1]
    dt = times[:, -1] - times[rows, first]
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.nanmean(boxes[..., 3] - boxes[..., 1], axis=1)
        c0 = (b0[:, :2] + b0[:, 2:]) * 0.5
        c1 = (b1[:, :2] + b1[:, 2:]) * 0.5
        v = (c1 - c0) / (dt * np.maximum(h, 1.0))[:, None]
    v[~(dt > 0)] = np.nan
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
