"""What the bridge knows of each unit, built only from the unit's contract messages, and the
JSON it publishes for Home Assistant and other tools.

``to_json`` mirrors one CBOR message key for key; ``UnitView`` keeps the derived state
(availability, open situations per rule, arming, camera problem) that entities read from one
retained ``state`` topic. Nothing here adds information the CBOR contract does not carry.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from typing import Any

from firmware.config import ConfigError, parse_text
from firmware.rules.config import RulesConfig

RULES = tuple(RulesConfig.model_fields)  # every rule a unit can run, in config order
CAMERA_REASONS = ("no_frames", "camera_reopened")  # status reasons that mean "camera problem"
ONLINE_STATES = ("online", "alert")  # the unit is connected in both
FIRE_PHASES = ("start", "instant")  # event phases that fire Home Assistant's event entity
OUTCOMES = ("ok", "refused", "timeout")  # event types of the command event entity


def plain_json(value: Any) -> Any:
    """A decoded CBOR value as JSON data: non-finite floats become null, bytes (which no unit
    sends) are withheld, map keys become text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes withheld>"
    return value


def to_json(message: Any) -> str:
    return json.dumps(plain_json(message), allow_nan=False, separators=(",", ":"))


def on_off(value: bool | None) -> str:
    """Home Assistant's switch/binary sensor payloads; "None" makes the state unknown."""
    return "None" if value is None else ("ON" if value else "OFF")


def slug(name: str) -> str:
    """A topic level and discovery id from a name (``[a-zA-Z0-9_-]``; others become _)."""
    out = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in name)
    return out[:64] or "_"


@dataclass
class SiteFacts:
    """What a unit's config (config/state) says the bridge should offer."""

    zones: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=lambda: list(RULES))  # enabled rules
    deterrents: list[str] = field(default_factory=list)
    problem: str | None = None  # why the config text could not be read, if it could not


def site_facts(text: str) -> SiteFacts:
    """Zones, enabled rules and deterrents of a unit's site config (config/state ``text``).

    A text that fails validation (a newer unit, a key this hub does not know) is read as
    plain TOML so its zones and deterrents still show."""
    try:
        cfg = parse_text(text, "config/state")
    except ConfigError as e:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return SiteFacts(problem=str(e))
        rules = data.get("rules", {}) if isinstance(data.get("rules"), dict) else {}
        return SiteFacts(
            zones=[str(z.get("name")) for z in data.get("zones", []) if isinstance(z, dict)],
            rules=[r for r in RULES if (rules.get(r) or {}).get("enabled", True) is not False],
            deterrents=[str(d) for d in data.get("deterrents", {}) or {}],
            problem=str(e),
        )
    return SiteFacts(
        zones=[z.name for z in cfg.zones],
        rules=[r for r in RULES if getattr(cfg.rules, r).enabled],
        deterrents=list(cfg.deterrents),
    )


@dataclass
class UnitView:
    """One unit as the bridge sees it."""

    site: str
    unit: str
    status: dict | None = None
    birth: dict | None = None
    facts: SiteFacts = field(default_factory=SiteFacts)
    metrics: dict | None = None
    armed: bool | None = None  # the whole unit: None = follows its schedule (or not known)
    zones_armed: dict[str, bool] = field(default_factory=dict)
    situations: dict[str, dict[str, dict]] = field(default_factory=dict)  # rule -> id -> event
    instant_until: dict[str, tuple[float, dict]] = field(default_factory=dict)  # rule -> hold
    last_severity: dict[str, int] = field(default_factory=dict)  # event_id -> highest fired

    @property
    def online(self) -> bool:
        return bool(self.status) and self.status.get("state") in ONLINE_STATES

    @property
    def reasons(self) -> list[str]:
        return [str(r) for r in (self.status or {}).get("reasons", [])]

    # -- from the unit's messages -----------------------------------------------------------

    def on_status(self, msg: dict) -> None:
        old_session = (self.status or {}).get("session")
        self.status = msg
        if msg.get("session") != old_session or msg.get("state") not in ONLINE_STATES:
            self._forget_situations()  # a new session or a gone unit: its situations are over

    def on_birth(self, msg: dict) -> None:
        if (self.birth or {}).get("session") != msg.get("session"):
            self._forget_situations()
        self.birth = msg

    def on_config(self, msg: dict) -> None:
        self.facts = site_facts(str(msg.get("text", "")))

    def on_metrics(self, msg: dict) -> None:
        self.metrics = msg
        if "armed" in msg:
            self.armed = msg["armed"] if isinstance(msg["armed"], bool) else None
        zones = msg.get("zones")
        if isinstance(zones, dict):
            self.zones_armed = {
                str(z): bool(f.get("armed")) for z, f in zones.items() if isinstance(f, dict)
            }

    def on_event(self, msg: dict, now: float, hold_s: float) -> dict | None:
        """Track the rule's situations; returns Home Assistant's event payload when this event
        should fire the event entity (a start, a one-off, or a rise in severity)."""
        if msg.get("type") in ("deterrent", "health"):
            return None
        session = (self.status or {}).get("session")
        if session is not None and msg.get("session") != session:
            return None  # a backlog from an earlier session: over, and no news
        rule, eid, phase = str(msg.get("rule")), str(msg.get("event_id")), msg.get("phase")
        open_ = self.situations.setdefault(rule, {})
        if phase in ("start", "update"):
            open_[eid] = msg
        elif phase == "end":
            open_.pop(eid, None)
        elif phase == "instant":
            self.instant_until[rule] = (now + hold_s, msg)
        severity = int(msg.get("severity", 0))
        fire = phase in FIRE_PHASES or (
            phase == "update" and severity > self.last_severity.get(eid, severity)
        )
        if phase == "end":
            self.last_severity.pop(eid, None)
        else:
            self.last_severity[eid] = max(severity, self.last_severity.get(eid, severity))
        if len(self.last_severity) > 10000:
            self.last_severity.clear()
        return ha_event(msg) if fire else None

    def expire(self, now: float) -> bool:
        """Drop one-off holds that ran out; True when the state changed."""
        gone = [r for r, (until, _) in self.instant_until.items() if until <= now]
        for r in gone:
            del self.instant_until[r]
        return bool(gone)

    def on_reply(self, cmd: str, args: dict, reply: dict) -> None:
        """An accepted arm/disarm changes the state at once (metrics confirm it later)."""
        if not reply.get("ok") or cmd not in ("arm", "disarm"):
            return
        zone = args.get("zone")
        if zone is None:
            self.armed = cmd == "arm"
        else:
            self.zones_armed[str(zone)] = cmd == "arm"

    def _forget_situations(self) -> None:
        self.situations.clear()
        self.instant_until.clear()
        self.last_severity.clear()

    # -- what entities read -----------------------------------------------------------------

    def rule_state(self, rule: str) -> dict[str, Any]:
        open_ = list(self.situations.get(rule, {}).values())
        held = self.instant_until.get(rule)
        latest = max(open_, key=lambda e: e.get("severity", 0)) if open_ else None
        if latest is None and held is not None:
            latest = held[1]
        return {
            "active": on_off(bool(open_) or held is not None),
            "situations": len(open_),
            "severity": latest.get("severity_name") if latest else None,
            "zone": latest.get("zone") if latest else None,
            "event_id": latest.get("event_id") if latest else None,
            "explain": plain_json(latest.get("explain")) if latest else None,
        }

    def state(self) -> dict[str, Any]:
        """The retained ``state`` topic: everything the binary sensors and switches show."""
        status = self.status or {}
        zones = list(dict.fromkeys([*self.facts.zones, *self.zones_armed]))
        rules = list(dict.fromkeys([*self.facts.rules, *self.situations, *self.instant_until]))
        return {
            "online": on_off(self.online),
            "status": status.get("state"),
            "reasons": self.reasons,
            "camera_problem": on_off(any(r in CAMERA_REASONS for r in self.reasons)),
            "session": status.get("session"),
            "armed": on_off(self.armed),
            "zones": {z: {"armed": on_off(self.zones_armed.get(z))} for z in zones},
            "rules": {r: self.rule_state(r) for r in rules},
        }


def ha_event(msg: dict) -> dict[str, Any]:
    """The event entity's payload: the rule as ``event_type``, the rest as attributes (all
    fields of the contract's event)."""
    return {
        "event_type": str(msg.get("rule")),
        "type": msg.get("type"),
        "phase": msg.get("phase"),
        "severity": msg.get("severity_name"),
        "zone": msg.get("zone"),
        "explain": plain_json(msg.get("explain") or {}),
        "event_id": msg.get("event_id"),
        "track_ids": list(msg.get("track_ids") or []),
        "time": plain_json(msg.get("time")),
        "incident_id": msg.get("incident_id"),
    }
