"""Events: the only thing that leaves the unit. Typed records, encoded as CBOR or JSON."""

from firmware.events.records import Event, EventPhase, Severity, new_event_id

__all__ = ["Event", "EventPhase", "Severity", "new_event_id"]
