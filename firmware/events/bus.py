"""The unit's one event bus: every event is stamped once and delivered, in one fixed order,
to every consumer.

Producers (rules, health, deterrent actions, hub commands, shutdown) call ``publish``.
Each event is first stamped (unit, site, session, seq, msg_id) and then handed to the
consumers in ascending ``order``. What a consumer returns (the deterrent controller's
actions) is published in turn, after the event that caused it reached every consumer.
The order (docs/DEVELOPERS.md, "Events"):

    FLOOR (5)         the floor position of the event's tracks (``[camera.floor]``)
    RECORDER (10)     attaches the event to the open incident: sets ``incident_id``
    DETERRENTS (20)   escalation; its actions come back through the bus
    COUNTS (30)       the loop's event counters
    SINKS (40)        local JSON lines (``--events-out``)
    LINK (50)         the hub link's outbox
    DIAGNOSTICS (60)  the diagnostics probe

So every consumer after the recorder sees the final record: ``--events-out`` lines are
exactly what the hub receives. New consumers subscribe with their own order number.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from firmware.events.records import Event

FLOOR, RECORDER, DETERRENTS, COUNTS, SINKS, LINK, DIAGNOSTICS = 5, 10, 20, 30, 40, 50, 60

# A consumer gets each stamped event; it may return follow-up events (or None).
Consumer = Callable[[Event], Iterable[Event] | None]


class EventSink(Protocol):
    """A local consumer of every event (JSON lines, a test recorder)."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class Stamper:
    """Stamps an event once with who sent it and where it stands in the session."""

    def __init__(self, unit: str | None, site: str | None, session: int | None) -> None:
        self.unit, self.site, self.session = unit, site, session
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def next_seq(self) -> int:
        return self._seq

    def stamp(self, event: Event) -> Event:
        """Sets unit, site, session, seq and msg_id; an event already stamped is left as is."""
        if event.seq is not None:
            return event
        with self._lock:
            event.seq = self._seq
            self._seq += 1
        event.unit, event.site, event.session = self.unit, self.site, self.session
        event.msg_id = uuid.uuid4().hex
        return event


@dataclass(order=True)
class Subscription:
    order: int
    name: str
    consumer: Consumer


class EventBus:
    """Stamps and delivers events (on the frame loop's thread: consumers need no locks)."""

    def __init__(self, stamper: Stamper) -> None:
        self.stamper = stamper
        self._subs: list[Subscription] = []

    def subscribe(self, order: int, name: str, consumer: Consumer) -> Subscription:
        """Add a consumer at ``order`` (see the module docstring); names are unique."""
        if any(s.name == name for s in self._subs):
            raise ValueError(f"an event consumer named {name!r} is already subscribed")
        sub = Subscription(order, name, consumer)
        self._subs.append(sub)
        self._subs.sort(key=lambda s: s.order)  # stable: equal orders keep their subscribe order
        return sub

    def unsubscribe(self, name: str) -> None:
        self._subs = [s for s in self._subs if s.name != name]

    @property
    def consumers(self) -> list[str]:
        """Consumer names in delivery order."""
        return [s.name for s in self._subs]

    def publish(self, events: Iterable[Event]) -> list[Event]:
        """Stamp and deliver ``events`` and everything they cause; returns them all, in
        delivery order."""
        pending = deque(events)
        done: list[Event] = []
        while pending:
            ev = self.stamper.stamp(pending.popleft())
            for sub in self._subs:
                more = sub.consumer(ev)
                if more:
                    pending.extend(more)
            done.append(ev)
        return done
