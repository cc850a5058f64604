"""Home Assistant MQTT discovery payloads for one unit, and the bridge's JSON topics.

The device-based form (HA 2024.12+) is one retained ``<prefix>/device/<id>/config`` with the
device, origin, shared availability and every entity under ``cmps``; the per-entity form is
one ``<prefix>/<platform>/<id>/<entity>/config`` per entity with the same content. Keys are
Home Assistant's documented option names (the abbreviated ``dev``, ``o``, ``cmps`` and ``p``
at the top level, as its docs show them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from firmware import __version__
from firmware.link.messages import Topics
from tools.hub.homeassistant.config import HomeAssistantConfig
from tools.hub.homeassistant.state import OUTCOMES, RULES, UnitView, slug

MIRRORED = ("status", "birth", "events", "metrics", "reply", "config/state")


@dataclass(frozen=True, slots=True)
class JsonTopics(Topics):
    """``<json_prefix>/<site>/<unit>/...``: the JSON side of one unit (its mirrors have the
    CBOR topics' suffixes, so ``status``, ``events``... are inherited)."""

    def mirror(self, kind: str) -> str:
        return f"{self.base}/{kind}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def command(self) -> str:
        return f"{self.base}/command"

    def set(self, *levels: str) -> str:
        return "/".join([self.base, "set", *levels])


def bridge_availability_topic(json_prefix: str, site: str) -> str:
    """The bridge's own availability (its MQTT Will publishes ``offline`` there)."""
    return f"{json_prefix}/_bridge/{'all' if site == '+' else site}/availability"


def device_id(site: str, unit: str) -> str:
    return slug(f"vigil_{site}_{unit}")


def _q(name: str) -> str:
    """A Jinja string literal for a name (zone, rule) inside a template."""
    return json.dumps(name)


def _pick(mapping: str, name: str, then: str, guard: str = "") -> str:
    """``{{ <then> if <name> in <mapping> else None }}``: "None" makes the state unknown."""
    cond = f"{guard} and {_q(name)} in {mapping}" if guard else f"{_q(name)} in {mapping}"
    return "{{ " + f"{then} if {cond} else None" + " }}"


def components(
    view: UnitView, cfg: HomeAssistantConfig, bridge_avty: str
) -> dict[str, dict[str, Any]]:
    """Every entity of one unit, keyed by its component id (unique within the device)."""
    t = JsonTopics(cfg.json_prefix, view.site, view.unit)
    uid = device_id(view.site, view.unit)
    allowed = set(cfg.allowed_commands)
    out: dict[str, dict[str, Any]] = {}

    def add(cid: str, platform: str, **options: Any) -> None:
        out[cid] = {"p": platform, "unique_id": f"{uid}_{cid}", **options}

    metrics = t.mirror("metrics")
    for zone in view.facts.zones:
        z = _q(zone)
        add(
            f"people_{slug(zone)}",
            "sensor",
            name=f"People in {zone}",
            state_topic=metrics,
            value_template=_pick(
                "value_json.zones",
                zone,
                f"value_json.zones[{z}].people",
                "value_json.zones is defined",
            ),
            unit_of_measurement="people",
            state_class="measurement",
            icon="mdi:account-group",
        )
    add(
        "fps",
        "sensor",
        name="Frames per second",
        state_topic=metrics,
        value_template="{{ value_json.fps if value_json.fps is defined else None }}",
        unit_of_measurement="fps",
        state_class="measurement",
        suggested_display_precision=1,
        entity_category="diagnostic",
        icon="mdi:speedometer",
    )
    add(
        "outbox_depth",
        "sensor",
        name="Outbox depth",
        state_topic=metrics,
        value_template="{{ value_json.outbox.depth }}",
        unit_of_measurement="events",
        state_class="measurement",
        entity_category="diagnostic",
        icon="mdi:tray-full",
    )
    add(
        "cpu_temperature",
        "sensor",
        name="CPU temperature",
        state_topic=metrics,
        value_template="{{ value_json.cpu_temp_c }}",
        device_class="temperature",
        unit_of_measurement="°C",
        state_class="measurement",
        entity_category="diagnostic",
    )
    add(
        "online",
        "binary_sensor",
        name="Online",
        state_topic=t.availability,
        payload_on="online",
        payload_off="offline",
        device_class="connectivity",
        entity_category="diagnostic",
        availability=[{"topic": bridge_avty}],  # shows off (not unavailable) when the unit is away
    )
    add(
        "camera_problem",
        "binary_sensor",
        name="Camera problem",
        state_topic=t.state,
        value_template="{{ value_json.camera_problem }}",
        device_class="problem",
        json_attributes_topic=t.state,
        json_attributes_template='{{ {"reasons": value_json.reasons, "status": '
        "value_json.status} | to_json }}",
    )
    rules = list(dict.fromkeys([*view.facts.rules, *view.situations, *view.instant_until]))
    for rule in rules:
        r = _q(rule)
        add(
            f"rule_{slug(rule)}",
            "binary_sensor",
            name=f"{rule.replace('_', ' ').capitalize()} active",
            state_topic=t.state,
            value_template=_pick("value_json.rules", rule, f"value_json.rules[{r}].active"),
            json_attributes_topic=t.state,
            json_attributes_template="{{ value_json.rules["
            + r
            + "] | to_json if "
            + r
            + " in value_json.rules else {} | to_json }}",
            icon="mdi:shield-alert",
        )
    add(
        "events",
        "event",
        name="Events",
        state_topic=t.event,
        event_types=rules or list(RULES),
        icon="mdi:cctv",
    )
    add(
        "commands",
        "event",
        name="Commands",
        state_topic=t.command,
        event_types=list(OUTCOMES),
        entity_category="diagnostic",
        icon="mdi:console",
    )
    add(
        "last_command",
        "sensor",
        name="Last command",
        state_topic=t.command,
        value_template="{{ value_json.summary }}",
        json_attributes_topic=t.command,
        entity_category="diagnostic",
        icon="mdi:console-line",
    )
    if allowed & {"arm", "disarm"}:
        add(
            "armed",
            "switch",
            name="Armed",
            state_topic=t.state,
            value_template="{{ value_json.armed }}",
            command_topic=t.set("armed"),
            payload_on="ON",
            payload_off="OFF",
            icon="mdi:shield-home",
        )
        for zone in view.facts.zones:
            z = _q(zone)
            add(
                f"armed_{slug(zone)}",
                "switch",
                name=f"Armed {zone}",
                state_topic=t.state,
                value_template=_pick("value_json.zones", zone, f"value_json.zones[{z}].armed"),
                command_topic=t.set("armed", slug(zone)),
                payload_on="ON",
                payload_off="OFF",
                icon="mdi:shield-outline",
            )
    if "deterrent_test" in allowed:
        for name in view.facts.deterrents:
            add(
                f"deterrent_test_{slug(name)}",
                "button",
                name=f"Test {name}",
                command_topic=t.set("deterrent_test", slug(name)),
                payload_press="PRESS",
                entity_category="diagnostic",
                icon="mdi:alarm-light-outline",
            )
    if "mute" in allowed and view.facts.deterrents:
        add(
            "mute",
            "button",
            name=f"Mute deterrents {cfg.mute_minutes:g} min",
            command_topic=t.set("mute"),
            payload_press="PRESS",
            icon="mdi:volume-off",
        )
        add(
            "unmute",
            "button",
            name="Unmute deterrents",
            command_topic=t.set("unmute"),
            payload_press="PRESS",
            icon="mdi:volume-high",
        )
    return out


def _device(view: UnitView) -> dict[str, Any]:
    birth = view.birth or {}
    return {
        "identifiers": [device_id(view.site, view.unit)],
        "name": f"Vigil {view.unit}",
        "manufacturer": "Vigil",
        "model": "Vigil camera unit",
        "sw_version": str(birth.get("firmware", "unknown")),
        "serial_number": f"{view.site}/{view.unit}",
    }


def _shared(view: UnitView, cfg: HomeAssistantConfig, bridge_avty: str) -> dict[str, Any]:
    t = JsonTopics(cfg.json_prefix, view.site, view.unit)
    return {
        "dev": _device(view),
        "o": {"name": "vigil-hub", "sw": __version__},
        "availability": [{"topic": t.availability}, {"topic": bridge_avty}],
        "availability_mode": "all",
    }


def device_discovery(
    view: UnitView,
    cfg: HomeAssistantConfig,
    bridge_avty: str,
    removed: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(topic, payload)`` of the device-based form; ``removed`` (component id -> platform)
    are announced as removed (``{"p": platform}``), as Home Assistant's docs say."""
    cmps = components(view, cfg, bridge_avty)
    for cid, platform in (removed or {}).items():
        cmps.setdefault(cid, {"p": platform})
    topic = f"{cfg.discovery_prefix}/device/{device_id(view.site, view.unit)}/config"
    return topic, {**_shared(view, cfg, bridge_avty), "cmps": cmps}


def entity_discovery(
    view: UnitView, cfg: HomeAssistantConfig, bridge_avty: str
) -> dict[str, dict[str, Any]]:
    """``{topic: payload}`` of the per-entity form (the platform goes into the topic)."""
    shared = _shared(view, cfg, bridge_avty)
    node = device_id(view.site, view.unit)
    out = {}
    for cid, comp in components(view, cfg, bridge_avty).items():
        comp = dict(comp)
        platform = comp.pop("p")
        out[f"{cfg.discovery_prefix}/{platform}/{node}/{cid}/config"] = {**shared, **comp}
    return out
