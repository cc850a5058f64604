"""The bridge's logic, without a connection: contract messages in, JSON and discovery out,
Home Assistant's switch and button presses turned into signed hub commands.

``BridgeCore.on_message(topic, payload)`` takes every message of the subscriptions it lists
(``subscriptions()``) and publishes through the ``publish`` callable it was given, so the
hub service can mount it on its own MQTT session; ``HomeAssistantBridge`` (bridge.py) gives it
one of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import cbor2

from tools.hub.client import command_topic
from tools.hub.homeassistant.config import HomeAssistantConfig
from tools.hub.homeassistant.discovery import (
    MIRRORED,
    JsonTopics,
    bridge_availability_topic,
    device_discovery,
    entity_discovery,
)
from tools.hub.homeassistant.state import UnitView, slug, to_json

log = logging.getLogger("vigil-hub.homeassistant")

RETAINED = {"status": True, "birth": True, "config/state": True, "metrics": True}
SWITCH_PAYLOADS = {"ON": "arm", "OFF": "disarm"}


class Publisher(Protocol):
    """Publishes one message (the bridge's MQTT connection, or the hub service's)."""

    def __call__(self, topic: str, payload: str | bytes, qos: int, retain: bool) -> None: ...


class Signer(Protocol):
    def sign(self, topic: str, request_id: str, args: dict) -> bytes: ...


@dataclass(slots=True)
class Pending:
    """A command sent for Home Assistant, waiting for the unit's reply."""

    site: str
    unit: str
    name: str
    args: dict
    deadline: float


class BridgeCore:
    """Home Assistant bridge for the units of ``site`` ('+' for every site) under ``prefix``."""

    def __init__(
        self,
        publish: Publisher,
        signer: Signer | None,
        cfg: HomeAssistantConfig | None = None,
        *,
        site: str = "+",
        prefix: str = "vigil",
        validator: Any | None = None,
    ):
        self.publish = publish
        self.signer = signer
        self.cfg = cfg or HomeAssistantConfig()
        self.site, self.prefix = site, prefix
        self.validator = validator
        self.bridge_availability = bridge_availability_topic(self.cfg.json_prefix, site)
        self.units: dict[tuple[str, str], UnitView] = {}
        self.pending: dict[str, Pending] = {}
        self.invalid = 0  # contract messages refused (not mirrored)
        self._announced: dict[tuple[str, str], str] = {}  # last discovery JSON per unit
        self._components: dict[tuple[str, str], dict[str, str]] = {}  # cid -> platform
        self._entity_topics: dict[tuple[str, str], set[str]] = {}
        self._seen_ids: OrderedDict[str, None] = OrderedDict()
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.RLock()

    # -- wiring -----------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Topic filters whose messages ``on_message`` needs (QoS 1)."""
        return [
            f"{self.prefix}/{self.site}/#",
            f"{self.cfg.json_prefix}/{self.site}/+/set/#",
            self.cfg.ha_status_topic,
        ]

    def on_connect(self) -> None:
        """After every (re)connect: the bridge is online, and everything known is re-sent."""
        self.publish(self.bridge_availability, "online", 1, True)
        self.announce_all()

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        with self._lock:
            try:
                self._dispatch(topic, bytes(payload))
            except Exception:  # one bad message must never stop the bridge
                log.exception("homeassistant: handling %s failed", topic)

    def tick(self, now: float | None = None) -> None:
        """Time-outs of pending commands and the end of one-off holds (call about once a second)."""
        now = time.time() if now is None else now
        with self._lock:
            for rid, p in list(self.pending.items()):
                if now >= p.deadline:
                    del self.pending[rid]
                    msg = f"no reply from the unit within {self.cfg.command_timeout_s:g} s"
                    self._outcome(p.site, p.unit, p.name, p.args, rid, "timeout", "timeout", msg)
            for view in self.units.values():
                if view.expire(now):
                    self._publish_state(view)

    def announce_all(self) -> None:
        """Discovery and every retained state again (Home Assistant said ``online``)."""
        with self._lock:
            self._announced.clear()
            for view in self.units.values():
                self._announce(view)
                self._publish_availability(view)
                self._publish_state(view)
                if view.metrics is not None:
                    self._mirror(view, "metrics", view.metrics)

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, topic: str, payload: bytes) -> None:
        if topic == self.cfg.ha_status_topic:
            if payload.decode("utf-8", "replace").strip().lower() == "online":
                log.info(
                    "homeassistant: Home Assistant is online; announcing %d unit(s)",
                    len(self.units),
                )
                self.announce_all()
            return
        parts = topic.split("/")
        if parts[0] == self.cfg.json_prefix and len(parts) >= 5 and parts[3] == "set":
            self._ha_command(parts[1], parts[2], parts[4:], payload)
            return
        if parts[0] != self.prefix or len(parts) < 4:
            return
        site, unit, kind = parts[1], parts[2], "/".join(parts[3:])
        if kind not in MIRRORED or not payload:
            return  # commands (ours and the hub's), topics the bridge does not use, cleared
        msg = self._decode(topic, kind, payload)
        if msg is None:
            return
        view = self.units.get((site, unit))
        if view is None:
            view = self.units[(site, unit)] = UnitView(site, unit)
            log.info("homeassistant: unit %s/%s appeared", site, unit)
        self._on_unit_message(view, kind, msg)

    def _decode(self, topic: str, kind: str, payload: bytes) -> dict | None:
        problems: list[str] = []
        try:
            msg = cbor2.loads(payload)
        except Exception as e:
            msg, problems = None, [f"not CBOR: {e}"]
        if not problems and self.validator is not None:
            problems = self.validator.check(kind, payload)
        if not problems and not isinstance(msg, dict):
            problems = ["not a CBOR map"]
        if problems:
            self.invalid += 1
            key = (topic, problems[0][:60])
            if key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "homeassistant: not mirrored, breaks the contract: %s: %s",
                    topic,
                    "; ".join(problems),
                )
            return None
        return msg

    def _on_unit_message(self, view: UnitView, kind: str, msg: dict) -> None:
        if kind == "events":
            mid = str(msg.get("msg_id"))
            if mid in self._seen_ids:
                return  # at-least-once delivery: a duplicate
            self._seen_ids[mid] = None
            if len(self._seen_ids) > 20000:
                self._seen_ids.popitem(last=False)
        self._mirror(view, kind, msg)
        if kind == "status":
            view.on_status(msg)
            self._announce(view)
            self._publish_availability(view)
        elif kind == "birth":
            view.on_birth(msg)
            self._announce(view)
        elif kind == "config/state":
            view.on_config(msg)
            if view.facts.problem:
                log.warning(
                    "homeassistant: %s/%s config: %s", view.site, view.unit, view.facts.problem
                )
            self._announce(view)
        elif kind == "metrics":
            view.on_metrics(msg)
        elif kind == "events":
            fired = view.on_event(msg, time.time(), self.cfg.instant_hold_s)
            if fired is not None:
                if fired["event_type"] not in view.facts.rules:
                    view.facts.rules.append(fired["event_type"])  # so the entity accepts it
                    self._announce(view)
                self.publish(self._topics(view).event, json.dumps(fired), 1, False)
        elif kind == "reply":
            self._on_reply(view, msg)
        else:
            return
        if kind in ("status", "birth", "metrics", "events", "config/state"):
            self._publish_state(view)

    # -- out --------------------------------------------------------------------------------

    def _topics(self, view: UnitView) -> JsonTopics:
        return JsonTopics(self.cfg.json_prefix, view.site, view.unit)

    def _mirror(self, view: UnitView, kind: str, msg: dict) -> None:
        retain = RETAINED.get(kind, False)
        self.publish(self._topics(view).mirror(kind), to_json(msg), 1, retain)

    def _publish_availability(self, view: UnitView) -> None:
        self.publish(
            self._topics(view).availability, "online" if view.online else "offline", 1, True
        )

    def _publish_state(self, view: UnitView) -> None:
        self.publish(self._topics(view).state, to_json(view.state()), 1, True)

    def _announce(self, view: UnitView) -> None:
        """Publish the unit's discovery when it changed (or was cleared by announce_all)."""
        key = (view.site, view.unit)
        retain = self.cfg.retain_discovery
        if self.cfg.discovery == "device":
            topic, payload = device_discovery(view, self.cfg, self.bridge_availability)
            text = json.dumps(payload, sort_keys=True)
            if self._announced.get(key) == text:
                return
            new = {cid: c["p"] for cid, c in payload["cmps"].items()}
            removed = {c: p for c, p in self._components.get(key, {}).items() if c not in new}
            if removed:  # Home Assistant's way: the removed ones as {"p": ...}, then without
                _, gone = device_discovery(view, self.cfg, self.bridge_availability, removed)
                self.publish(topic, json.dumps(gone), 1, retain)
            self.publish(topic, json.dumps(payload), 1, retain)
            self._components[key] = new
        else:
            payloads = entity_discovery(view, self.cfg, self.bridge_availability)
            text = json.dumps(payloads, sort_keys=True)
            if self._announced.get(key) == text:
                return
            for old in self._entity_topics.get(key, set()) - set(payloads):
                self.publish(old, "", 1, retain)
            for topic, payload in payloads.items():
                self.publish(topic, json.dumps(payload), 1, retain)
            self._entity_topics[key] = set(payloads)
        self._announced[key] = text

    # -- commands from Home Assistant -------------------------------------------------------

    def _ha_command(self, site: str, unit: str, what: list[str], payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip()
        view = self.units.get((site, unit))
        where = f"{site}/{unit} set/{'/'.join(what)}"
        if view is None:
            log.warning("homeassistant: %s: no such unit; ignored", where)
            return
        try:
            name, args = self._command_for(view, what, text)
        except ValueError as e:
            self._outcome(site, unit, "/".join(what), {}, None, "refused", "bad_request", str(e))
            return
        if name not in self.cfg.allowed_commands:
            msg = f"{name} is not in [homeassistant] allowed_commands ({', '.join(self.cfg.allowed_commands) or 'none'})"
            self._outcome(site, unit, name, args, None, "refused", "not_allowed", msg)
            return
        if self.signer is None:
            self._outcome(
                site,
                unit,
                name,
                args,
                None,
                "refused",
                "no_key",
                "the hub has no command key (--key)",
            )
            return
        if not view.online:
            msg = f"unit is {(view.status or {}).get('state', 'not seen')}; command not sent"
            self._outcome(site, unit, name, args, None, "refused", "offline", msg)
            return
        topic = command_topic(self.prefix, site, unit, name)
        rid = uuid.uuid4().hex[:16]
        self.pending[rid] = Pending(
            site, unit, name, args, time.time() + self.cfg.command_timeout_s
        )
        self.publish(topic, self.signer.sign(topic, rid, args), 1, False)
        log.info("homeassistant: %s -> signed %s %s [%s]", where, name, args, rid)

    def _command_for(self, view: UnitView, what: list[str], text: str) -> tuple[str, dict]:
        """The hub command of one Home Assistant command topic and payload."""
        head, rest = what[0], what[1:]
        if head == "armed" and len(rest) <= 1:
            if text not in SWITCH_PAYLOADS:
                raise ValueError(f"payload {text[:20]!r} is not ON or OFF")
            args = {}
            if rest:
                zones = {slug(z): z for z in view.facts.zones}
                if rest[0] not in zones:
                    raise ValueError(f"no zone {rest[0]!r} on this unit")
                args["zone"] = zones[rest[0]]
            return SWITCH_PAYLOADS[text], args
        if text != "PRESS":
            raise ValueError(f"payload {text[:20]!r} is not PRESS")
        if head == "deterrent_test" and len(rest) == 1:
            names = {slug(d): d for d in view.facts.deterrents}
            if rest[0] not in names:
                raise ValueError(f"no deterrent {rest[0]!r} on this unit")
            return "deterrent_test", {
                "name": names[rest[0]],
                "seconds": self.cfg.deterrent_test_seconds,
            }
        if head in ("mute", "unmute") and not rest:
            return "mute", {"minutes": self.cfg.mute_minutes if head == "mute" else 0}
        raise ValueError(f"unknown command topic set/{'/'.join(what)}")

    def _on_reply(self, view: UnitView, reply: dict) -> None:
        rid = reply.get("id")
        p = self.pending.pop(rid, None) if isinstance(rid, str) else None
        if p is None:
            return  # a reply to someone else's command
        view.on_reply(p.name, p.args, reply)
        err = reply.get("error") or {}
        if reply.get("ok"):
            self._outcome(
                p.site, p.unit, p.name, p.args, rid, "ok", None, None, reply.get("result")
            )
        else:
            self._outcome(
                p.site, p.unit, p.name, p.args, rid, "refused", err.get("code"), err.get("message")
            )
        self._publish_state(view)

    def _outcome(
        self,
        site: str,
        unit: str,
        name: str,
        args: dict,
        rid: str | None,
        outcome: str,
        code: str | None,
        message: str | None,
        result: Any = None,
    ) -> None:
        """Publish a command's outcome for the Commands event entity and Last command sensor."""
        summary = f"{name}: {outcome}" + (f" ({code})" if code and outcome != "ok" else "")
        body = {
            "event_type": outcome,
            "summary": summary[:255],
            "command": name,
            "args": args,
            "request_id": rid,
            "code": code,
            "message": message,
            "result": result,
            "time": time.time(),
        }
        if outcome != "ok":
            log.warning("homeassistant: %s/%s %s: %s", site, unit, summary, message)
        self.publish(JsonTopics(self.cfg.json_prefix, site, unit).command, to_json(body), 1, False)
