"""Synthetic tracks for tests and benchmarks: exact situations (a person walking a path,
standing still, running) as ``Tracks`` frame by frame. Not used by the unit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from firmware.types import PERSON, Tracks, TrackState


@dataclass
class Actor:
    """One track: foot position (px) per frame from ``start`` on, and its box size."""

    tid: int
    feet: np.ndarray  # (F,2) foot points, one per frame
    start: int = 0
    height: float | np.ndarray = 100.0
    width: float | np.ndarray = 40.0
    cls: int = PERSON
    keypoints: np.ndarray | None = field(default=None)  # (F,17,3) per frame, pixels

    def box(self, frame: int) -> np.ndarray | None:
        i = frame - self.start
        if i < 0 or i >= len(self.feet):
            return None
        h = self.height if np.isscalar(self.height) else self.height[i]
        w = self.width if np.isscalar(self.width) else self.width[i]
        x, y = self.feet[i]
        return np.array([x - w / 2, y - h, x + w / 2, y], np.float32)


def path(points: Sequence[tuple[float, float]], speed_px_s: float, fps: float) -> np.ndarray:
    """Foot points moving at a constant speed along a polyline, one per frame."""
    pts = np.asarray(points, np.float64)
    seg = np.diff(pts, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    total = lengths.sum()
    n = max(2, int(round(total / speed_px_s * fps)) + 1)
    s = np.linspace(0, total, n)
    cum = np.concatenate([[0], np.cumsum(lengths)])
    x = np.interp(s, cum, pts[:, 0])
    y = np.interp(s, cum, pts[:, 1])
    return np.stack([x, y], axis=1)


def still(point: tuple[float, float], seconds: float, fps: float) -> np.ndarray:
    n = max(1, int(round(seconds * fps)))
    return np.tile(np.asarray(point, np.float64), (n, 1))


def concat(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts, axis=0)


def frames(actors: Sequence[Actor], n_frames: int | None = None) -> Iterator[Tracks]:
    """Tracks for frames 0.. until the last actor ends (or ``n_frames``)."""
    if n_frames is None:
        n_frames = max(a.start + len(a.feet) for a in actors)
    with_kp = any(a.keypoints is not None for a in actors)
    for f in range(n_frames):
        ids, boxes, classes, kps = [], [], [], []
        for a in actors:
            b = a.box(f)
            if b is not None:
                ids.append(a.tid)
                boxes.append(b)
                classes.append(a.cls)
                kp = None if a.keypoints is None else a.keypoints[f - a.start]
                kps.append(np.full((17, 3), np.nan, np.float32) if kp is None else kp)
        n = len(ids)
        yield Tracks(
            ids=np.array(ids, np.int64),
            boxes=np.array(boxes, np.float32).reshape(n, 4),
            scores=np.ones(n, np.float32),
            classes=np.array(classes, np.int16),
            states=np.full(n, TrackState.CONFIRMED, np.int8),
            velocities=np.zeros((n, 2), np.float32),
            matched=np.ones(n, bool),
            keypoints=np.array(kps, np.float32).reshape(n, 17, 3) if with_kp else None,
        )


def run(engine, actors: Sequence[Actor], fps: float, n_frames: int | None = None) -> list:
    """Feed the actors' tracks to a RuleEngine frame by frame and close it; all events."""
    events = []
    f = -1
    for f, tr in enumerate(frames(actors, n_frames)):
        events += engine.update(tr, f / fps, f)
    events += engine.close((f + 1) / fps, f + 1)
    return events
