"""Dry-contact inputs on GPIO (gpiozero): debounced by a stable-time rule, chatter reported.

gpiozero's callbacks only note the raw level and its time; :meth:`ContactInputs.poll`, called
by the frame loop, accepts a level once it has held for ``debounce_s`` and stamps the change
with the time of its first edge, so the rules see when the gate alarmed, not when it settled.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from firmware.inputs.config import ContactInputConfig
from firmware.inputs.records import ContactChange, InputFault, InputRecord


class ContactInput:
    """One input: a gpiozero DigitalInputDevice and its debounce/chatter state."""

    def __init__(
        self,
        name: str,
        cfg: ContactInputConfig,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        from gpiozero import DigitalInputDevice

        self.name, self.cfg, self._clock = name, cfg, clock
        self._lock = threading.Lock()
        self.device = DigitalInputDevice(
            cfg.pin, pull_up=cfg.active_level == "low", pin_factory=pin_factory
        )
        now = clock()
        self._raw = bool(self.device.is_active)
        self._raw_t = now
        self._edge_t = now  # first edge of the current raw level's run
        self._accepted = False  # an input active at start is reported as a change
        self._edges: deque[float] = deque()
        self.chattering = False
        self.changes = 0
        self.device.when_activated = lambda: self._edge(True)
        self.device.when_deactivated = lambda: self._edge(False)

    def _edge(self, active: bool) -> None:
        now = self._clock()
        with self._lock:
            if active == self._raw:
                return
            if self._raw == self._accepted:
                self._edge_t = now  # a new run away from the accepted level starts here
            self._raw, self._raw_t = active, now
            self._edges.append(now)

    def poll(self, now: float) -> list[InputRecord]:
        """Changes (and chatter reports) due by ``now``, stamped on the monotonic clock."""
        cfg = self.cfg
        out: list[InputRecord] = []
        with self._lock:
            edges = self._edges
            while edges and edges[0] < now - cfg.chatter_window_s:
                edges.popleft()
            if not self.chattering and len(edges) > cfg.chatter_changes:
                self.chattering = True
                out.append(
                    InputFault(
                        now,
                        self.name,
                        "input_chatter",
                        f"{len(edges)} changes in {cfg.chatter_window_s:g} s (limit {cfg.chatter_changes}); ignored until quiet for {cfg.chatter_window_s:g} s",
                    )
                )
            elif self.chattering and not edges:
                self.chattering = False
                out.append(InputFault(now, self.name, "input_recovered", "quiet again"))
            if self.chattering:
                return out
            if self._raw != self._accepted and now - self._raw_t >= cfg.debounce_s:
                self._accepted = self._raw
                self.changes += 1
                out.append(ContactChange(self._edge_t, self.name, cfg.kind, cfg.zone, self._raw))
        return out

    @property
    def active(self) -> bool:
        """The debounced state."""
        return self._accepted

    def close(self) -> None:
        self.device.close()


class ContactInputs:
    """Every ``[inputs.<name>]`` of the site config. A pin that cannot be opened closes the
    ones already opened and raises (the build is all or nothing)."""

    def __init__(
        self,
        cfgs: dict[str, ContactInputConfig],
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.inputs: list[ContactInput] = []
        try:
            for name, c in cfgs.items():
                self.inputs.append(ContactInput(name, c, pin_factory, clock))
        except Exception:
            self.close()
            raise

    def poll(self, now: float) -> list[InputRecord]:
        out: list[InputRecord] = []
        for i in self.inputs:
            out.extend(i.poll(now))
        return out

    def close(self) -> None:
        for i in self.inputs:
            i.close()
        self.inputs = []
