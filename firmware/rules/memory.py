"""Per-track memory for the rules: fixed slots in numpy arrays, so every rule works on all
tracks at once instead of looping over Python objects.

A track id gets a slot on first sight and keeps it until it has been unseen for a while;
rules register their own per-slot arrays with :meth:`TrackMemory.alloc` so they grow and
reset together. Always read arrays through the attribute (``mem.name``): growing replaces them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TrackMemory:
    """Slots of per-track state plus a short ring buffer of past boxes and times."""

    def __init__(self, history: int = 64, capacity: int = 64, height_window: int = 16):
        self.history = int(history)
        # Running sum of box heights over the last ``height_window`` frames (the motion
        # rules' speed window), kept on push so speeds need not read the whole window.
        self.height_window = max(1, min(int(height_window), self.history - 1))
        self.capacity = int(capacity)
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = list(range(self.capacity - 1, -1, -1))
        self._specs: dict[str, tuple[tuple[int, ...], Any, Any]] = {}
        self._last_ids: bytes | None = None  # slots_for's last ids and their slots
        self._pushed = (0, np.nan)  # tracks in the last push, and its time
        self._last_slots = np.empty(0, np.int64)
        self.ids = self.alloc("ids", (), np.int64, -1)
        self.active = self.alloc("active", (), bool, False)
        self.cls = self.alloc("cls", (), np.int16, 0)
        self.first_t = self.alloc("first_t", (), np.float64, np.nan)
        self.last_t = self.alloc("last_t", (), np.float64, np.nan)
        self.hist_box = self.alloc("hist_box", (self.history, 4), np.float32, np.nan)
        self.hist_t = self.alloc("hist_t", (self.history,), np.float64, np.nan)
        self.hist_n = self.alloc("hist_n", (), np.int32, 0)
        self.ptr = self.alloc("ptr", (), np.int32, 0)
        self.hsum = self.alloc("hsum", (), np.float64, 0.0)

    def alloc(self, name: str, tail: tuple[int, ...], dtype: Any, fill: Any) -> np.ndarray:
        """Register a per-slot array ``(capacity, *tail)`` filled with ``fill``; returns it."""
        arr = np.full((self.capacity, *tail), fill, dtype=dtype)
        self._specs[name] = (tuple(tail), dtype, fill)
        setattr(self, name, arr)
        return arr

    def _grow(self) -> None:
        old = self.capacity
        self.capacity = old * 2
        for name, (tail, dtype, fill) in self._specs.items():
            arr = np.full((self.capacity, *tail), fill, dtype=dtype)
            arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        self._free = list(range(self.capacity - 1, old - 1, -1)) + self._free

    def slots_for(self, ids: np.ndarray, t: float) -> np.ndarray:
        """Slots of these track ids, giving new ids a fresh slot. The same ids as last
        time (the common case) reuse last time's slots: none of them can have expired."""
        key = ids.astype(np.int64, copy=False).tobytes()
        if key == self._last_ids:
            return self._last_slots
        out = self._lookup(ids, t)
        self._last_ids, self._last_slots = key, out
        out.flags.writeable = False  # shared with later frames
        return out

    def _lookup(self, ids: np.ndarray, t: float) -> np.ndarray:
        out = np.empty(len(ids), np.int64)
        slot_of = self._slot_of
        for i, tid in enumerate(ids.tolist()):
            s = slot_of.get(tid)
            if s is None:
                if not self._free:
                    self._grow()
                s = self._free.pop()
                slot_of[tid] = s
                self.ids[s] = tid
                self.active[s] = True
                self.first_t[s] = t
            out[i] = s
        return out

    def slot(self, tid: int) -> int | None:
        return self._slot_of.get(int(tid))

    def push(self, slots: np.ndarray, boxes: np.ndarray, classes: np.ndarray, t: float) -> None:
        """Record this frame's boxes in the ring buffer."""
        p = (self.ptr[slots] + 1) % self.history
        n = self.height_window
        full = self.hist_n[slots] >= n
        old = self.hist_box[slots, (p - n) % self.history]
        self.hsum[slots] += (boxes[:, 3] - boxes[:, 1]) - np.where(full, old[:, 3] - old[:, 1], 0.0)
        self.hist_box[slots, p] = boxes
        self.hist_t[slots, p] = t
        self.ptr[slots] = p
        self.hist_n[slots] = np.minimum(self.hist_n[slots] + 1, self.history)
        self.cls[slots] = classes
        self.last_t[slots] = t
        self._pushed = (len(slots), t)

    def back(self, slots: np.ndarray, k: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes, times) ``k`` recorded frames back (clipped to what is recorded)."""
        idx = self._back_index(slots, k)
        return self.hist_box[slots, idx], self.hist_t[slots, idx]

    def back_boxes(self, slots: np.ndarray, k: np.ndarray | int) -> np.ndarray:
        """The boxes of :meth:`back` alone (one gather fewer)."""
        return self.hist_box[slots, self._back_index(slots, k)]

    def _back_index(self, slots: np.ndarray, k: np.ndarray | int) -> np.ndarray:
        k = np.minimum(np.asarray(k), self.hist_n[slots] - 1)
        return (self.ptr[slots] - k) % self.history

    def window(self, slots: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``n`` boxes and times per slot, oldest first: (S,n,4), (S,n); NaN where
        not recorded."""
        return self.window_at(slots, np.arange(min(n, self.history) - 1, -1, -1))

    def window_at(self, slots: np.ndarray, backs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and times ``backs`` recorded frames back per slot (each below ``history``):
        (S,K,4), (S,K); NaN where not recorded."""
        idx = (self.ptr[slots, None] - backs[None, :]) % self.history
        boxes = self.hist_box[slots[:, None], idx]
        times = self.hist_t[slots[:, None], idx]
        missing = backs[None, :] >= self.hist_n[slots, None]
        if missing.any():
            boxes = np.where(missing[..., None], np.nan, boxes)
            times = np.where(missing, np.nan, times)
        return boxes, times

    def expire(self, t: float, forget_s: float) -> list[tuple[int, int]]:
        """Free the slots of tracks unseen for longer than ``forget_s``; returns (slot, id)."""
        if self._pushed == (len(self._slot_of), t) and forget_s >= 0:
            return []  # every live track was just pushed at ``t``: none is stale
        stale = np.nonzero(self.active & (t - self.last_t > forget_s))[0]
        out = []
        if len(stale):
            self._last_ids = None
        for s in stale.tolist():
            tid = int(self.ids[s])
            out.append((s, tid))
            del self._slot_of[tid]
            for name, (_tail, _dtype, fill) in self._specs.items():
                getattr(self, name)[s] = fill
            self._free.append(s)
        return out

    def __len__(self) -> int:
        return len(self._slot_of)
