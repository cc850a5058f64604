"""Zones and lines of the site, in pixels, tested for all tracks at once.

A person is in a zone by the bottom-centre of their box (where they stand), and only after
``inertia_frames`` consecutive frames inside (leaving needs as many frames outside): a box
that jitters across the edge does not enter and leave every frame. Entry and exit times are
those of the first frame of the run, so dwell times are not shortened by the inertia.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from firmware.config.schema import LineConfig, ZoneConfig
from firmware.rules.memory import TrackMemory

_EXIT_PURPOSES = ("exit", "entrance", "fire_exit")


def foot_points(boxes: np.ndarray) -> np.ndarray:
    """Bottom-centre of xyxy boxes, (N,2)."""
    dtype = boxes.dtype if np.issubdtype(boxes.dtype, np.floating) else np.float64
    out = np.empty((len(boxes), 2), dtype)  # as np.stack would give, without its overhead
    np.add(boxes[:, 0], boxes[:, 2], out=out[:, 0])
    out[:, 0] *= 0.5
    out[:, 1] = boxes[:, 3]
    return out


class ZoneSet:
    """The site's polygons plus, per track slot, which zones the track is in and since when."""

    def __init__(
        self,
        zones: Sequence[ZoneConfig],
        frame_size: tuple[int, int],
        mem: TrackMemory,
        return_window_s: float = 0.0,
    ):
        w, h = frame_size
        self.names = [z.name for z in zones]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.purposes = [z.purpose for z in zones]
        self.inertia = np.array([z.inertia_frames for z in zones], np.int64)  # as the runs
        self._neg_inertia = -self.inertia
        self.armed = np.array([z.armed for z in zones], bool)
        self.return_window_s = float(return_window_s)
        self.polygons = [np.asarray(z.polygon, np.float64) * (w, h) for z in zones]
        x1, y1, x2, y2, starts = [], [], [], [], []
        for poly in self.polygons:
            starts.append(len(x1))
            nxt = np.roll(poly, -1, axis=0)
            x1 += poly[:, 0].tolist()
            y1 += poly[:, 1].tolist()
            x2 += nxt[:, 0].tolist()
            y2 += nxt[:, 1].tolist()
        self._x1, self._y1 = np.array(x1), np.array(y1)
        self._y2 = np.array(y2)
        dy = self._y2 - self._y1
        self._slope = np.where(dy != 0, (np.array(x2) - self._x1) / np.where(dy != 0, dy, 1), 0)
        self._starts = np.array(starts, np.int64)
        self.mem = mem
        z = len(self.names)
        # Membership state per (slot, zone).
        mem.alloc("z_run", (z,), np.int64, 0)  # signed run of frames inside (+) / outside (-)
        mem.alloc("z_run_t", (z,), np.float64, np.nan)  # first frame time of the current run
        mem.alloc("z_member", (z,), bool, False)
        mem.alloc("z_enter_t", (z,), np.float64, np.nan)
        mem.alloc("z_exit_t", (z,), np.float64, np.nan)
        mem.alloc("z_acc_s", (z,), np.float64, 0.0)  # time of earlier visits that still count
        mem.alloc("z_visits", (z,), np.int32, 0)
        mem.alloc("z_last_visit_s", (z,), np.float64, np.nan)  # length of the last ended visit

    def __len__(self) -> int:
        return len(self.names)

    def select(self, names: Sequence[str] | None, purposes: Sequence[str] | None) -> np.ndarray:
        """Column indices of the zones named, or else of those with one of the purposes
        (``purposes=None``: all zones)."""
        if names is not None:
            return np.array([self.index[n] for n in names if n in self.index], np.int64)
        if purposes is None:
            return np.arange(len(self.names), dtype=np.int64)
        return np.array([i for i, p in enumerate(self.purposes) if p in purposes], np.int64)

    def contains(self, pts: np.ndarray) -> np.ndarray:
        """(N,Z) bool: point i lies inside zone j (even-odd rule)."""
        if not self.names or len(pts) == 0:
            return np.zeros((len(pts), len(self.names)), bool)
        x = pts[:, 0:1]
        y = pts[:, 1:2]
        straddle = (self._y1 > y) != (self._y2 > y)
        xint = self._x1 + (y - self._y1) * self._slope
        cross = straddle & (x < xint)
        return np.bitwise_xor.reduceat(cross, self._starts, axis=1)  # parity of crossings

    def update(
        self, slots: np.ndarray, feet: np.ndarray, t: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance membership of these slots; returns (entered, exited) as (N,Z) bool."""
        m = self.mem
        if not self.names:
            empty = np.zeros((len(slots), 0), bool)
            return empty, empty
        raw = self.contains(feet)
        # Signed run length: +k = k frames inside in a row, -k = k frames outside.
        # Row gathers with take: several times faster than fancy indexing on 2-D arrays.
        run = m.z_run.take(slots, axis=0)
        step = np.where(raw, 1, -1)
        same = (run > 0) == raw
        run = np.where(same, run + step, step)
        m.z_run[slots] = run
        fresh = ~same
        if fresh.any():  # a run starts: remember its first frame's time
            r, c = np.nonzero(fresh)
            m.z_run_t[slots[r], c] = t
        was = m.z_member.take(slots, axis=0)
        now = np.where(was, run > self._neg_inertia, run >= self.inertia)
        changed = now != was
        if not changed.any():  # the common case: nobody entered or left a zone
            return changed, changed
        run_t = m.z_run_t.take(slots, axis=0)  # first frame of the current run
        entered = changed & now
        exited = changed & was
        if entered.any():
            enter_t = np.where(entered, run_t, m.z_enter_t[slots])
            gap = run_t - m.z_exit_t[slots]
            keep = entered & (gap <= self.return_window_s)  # NaN gap (first visit): False
            acc = np.where(entered & ~keep, 0.0, m.z_acc_s[slots])
            m.z_enter_t[slots] = enter_t
            m.z_acc_s[slots] = acc
            m.z_visits[slots] = np.where(
                entered, np.where(keep, m.z_visits[slots] + 1, 1), m.z_visits[slots]
            )
        if exited.any():
            visit = run_t - m.z_enter_t[slots]
            m.z_acc_s[slots] = np.where(exited, m.z_acc_s[slots] + visit, m.z_acc_s[slots])
            m.z_last_visit_s[slots] = np.where(exited, visit, m.z_last_visit_s[slots])
            m.z_exit_t[slots] = np.where(exited, run_t, m.z_exit_t[slots])
            m.z_enter_t[slots] = np.where(exited, np.nan, m.z_enter_t[slots])
        m.z_member[slots] = now
        return entered, exited

    def dwell(self, slots: np.ndarray, t: float) -> np.ndarray:
        """(N,Z) seconds in each zone counting earlier visits within the return window; 0
        where the track is not in the zone now."""
        m = self.mem
        cur = t - m.z_enter_t.take(slots, axis=0)
        return np.where(m.z_member.take(slots, axis=0), cur + m.z_acc_s.take(slots, axis=0), 0.0)


class LineSet:
    """Directed lines; 'in' is a crossing from the left of A->B to its right, as seen in
    the image (y down)."""

    def __init__(self, lines: Sequence[LineConfig], frame_size: tuple[int, int]):
        w, h = frame_size
        self.names = [ln.name for ln in lines]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.purposes = [ln.purpose for ln in lines]
        pts = np.array([ln.points for ln in lines], np.float64).reshape(-1, 2, 2) * (w, h)
        self.a = pts[:, 0]
        self.b = pts[:, 1]
        self._d = self.b - self.a

    def __len__(self) -> int:
        return len(self.names)

    def select(self, names: Sequence[str] | None) -> np.ndarray:
        if names is None:
            return np.arange(len(self.names), dtype=np.int64)
        return np.array([self.index[n] for n in names if n in self.index], np.int64)

    def side(self, pts: np.ndarray) -> np.ndarray:
        """(N,L) signed side of each point: > 0 right of A->B, < 0 left."""
        d = self._d
        rel = pts[:, None, :] - self.a[None]
        return d[None, :, 0] * rel[..., 1] - d[None, :, 1] * rel[..., 0]

    def crossings(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """(N,L) int8: +1 crossed 'in', -1 crossed 'out', 0 none, for moves prev -> cur
        (NaN prev: no crossing)."""
        if not self.names or len(cur) == 0:
            return np.zeros((len(cur), len(self.names)), np.int8)
        s0 = self.side(prev)
        s1 = self.side(cur)
        changed = (s0 < 0) & (s1 >= 0) | (s0 >= 0) & (s1 < 0)
        if not changed.any():
            return np.zeros(changed.shape, np.int8)
        # The move must also pass between A and B: A and B on opposite sides of the move.
        mv = cur - prev
        ra = self.a[None] - prev[:, None, :]
        rb = self.b[None] - prev[:, None, :]
        sa = mv[:, None, 0] * ra[..., 1] - mv[:, None, 1] * ra[..., 0]
        sb = mv[:, None, 0] * rb[..., 1] - mv[:, None, 1] * rb[..., 0]
        within = sa * sb <= 0
        hit = changed & within
        return np.where(hit, np.where(s1 >= 0, 1, -1), 0).astype(np.int8)


def exit_targets(zones: ZoneSet, lines: LineSet, names: Sequence[str] | None) -> np.ndarray:
    """(K,2) pixel points that stand for the exits: zone centroids and line midpoints."""
    pts = []
    for i, n in enumerate(zones.names):
        if (names is None and zones.purposes[i] in _EXIT_PURPOSES) or (names and n in names):
            pts.append(zones.polygons[i].mean(axis=0))
    for i, n in enumerate(lines.names):
        if (names is None and lines.purposes[i] in _EXIT_PURPOSES) or (names and n in names):
            pts.append((lines.a[i] + lines.b[i]) * 0.5)
    return np.array(pts, np.float64).reshape(-1, 2)
