"""Home Assistant's MQTT discovery schema as its documentation states it, for tests (Home
Assistant itself does not install on this Python: see docs/homeassistant.md).

From home-assistant.io's MQTT integration page (discovery topic, device-based payload,
abbreviations, origin) and the pages of the sensor, binary sensor, switch, button and event
platforms (required options, allowed values). ``problems(topic, payload)`` lists every
departure; templates are compiled and rendered with Jinja2 as Home Assistant does
(``value`` and ``value_json``, plus its ``to_json`` filter).
"""

from __future__ import annotations

import json
import re
from typing import Any

import jinja2

ID = re.compile(r"^[a-zA-Z0-9_-]+$")
# "Platforms supported by MQTT discovery" (the ones this check knows the options of).
PLATFORMS = {"sensor", "binary_sensor", "switch", "button", "event"}
ALL_PLATFORMS = PLATFORMS | {
    "alarm_control_panel", "camera", "cover", "device_automation", "device_tracker", "fan",
    "humidifier", "climate", "image", "lawn_mower", "light", "lock", "notify", "number",
    "scene", "select", "siren", "tag", "text", "update", "vacuum", "valve", "water_heater",
}  # fmt: skip
# Abbreviations this bridge could meet (a subset of the documented list).
ABBREVIATIONS = {
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "cmd_t": "command_topic", "cmd_tpl": "command_template",
    "cmps": "components", "dev": "device", "dev_cla": "device_class", "e": "encoding",
    "en": "enabled_by_default", "ent_cat": "entity_category", "evt_typ": "event_types",
    "exp_aft": "expire_after", "ic": "icon", "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template", "name": "name", "o": "origin",
    "off_dly": "off_delay", "opt": "optimistic", "p": "platform", "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available", "pl_off": "payload_off", "pl_on": "payload_on",
    "pl_prs": "payload_press", "ret": "retain", "stat_cla": "state_class",
    "stat_off": "state_off", "stat_on": "state_on", "stat_t": "state_topic",
    "sug_dsp_prc": "suggested_display_precision", "t": "topic", "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template",
}  # fmt: skip
DEVICE_ABBREVIATIONS = {
    "cns": "connections", "cu": "configuration_url", "ids": "identifiers", "name": "name",
    "mf": "manufacturer", "mdl": "model", "mdl_id": "model_id", "hw": "hw_version",
    "sw": "sw_version", "sa": "suggested_area", "sn": "serial_number", "via_device": "via_device",
}  # fmt: skip
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}

# Options every MQTT entity platform takes.
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "device", "origin", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "icon", "json_attributes_template", "json_attributes_topic", "name", "object_id",
    "default_entity_id", "payload_available", "payload_not_available", "qos", "unique_id",
    "platform",
}  # fmt: skip
OPTIONS = {
    "sensor": {
        "state_topic", "value_template", "device_class", "unit_of_measurement", "state_class",
        "expire_after", "force_update", "last_reset_value_template", "options",
        "suggested_display_precision",
    },
    "binary_sensor": {
        "state_topic", "value_template", "device_class", "payload_on", "payload_off",
        "off_delay", "expire_after", "force_update",
    },
    "switch": {
        "command_topic", "command_template", "state_topic", "value_template", "payload_on",
        "payload_off", "state_on", "state_off", "optimistic", "retain", "device_class",
    },
    "button": {"command_topic", "command_template", "payload_press", "retain", "device_class"},
    "event": {"state_topic", "event_types", "value_template", "device_class"},
}  # fmt: skip
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "switch": {"command_topic"},
    "button": {"command_topic"},
    "event": {"state_topic", "event_types"},
}
DEVICE_CLASSES = {
    "binary_sensor": {
        "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
        "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving",
        "occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety",
        "smoke", "sound", "tamper", "update", "vibration", "window",
    },
    "button": {"identify", "restart", "update"},
    "switch": {"outlet", "switch"},
    "event": {"button", "doorbell", "motion"},
    "sensor": {"temperature", "duration", "timestamp", "power", "energy", "voltage", "current"},
}  # fmt: skip
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
# Root options the device-based form shares with its components.
SHARED = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "payload_available", "payload_not_available", "origin", "device", "components",
    "command_topic", "state_topic", "qos", "encoding", "~",
}  # fmt: skip


def expand(d: dict, table: dict[str, str]) -> dict:
    return {table.get(k, k): v for k, v in d.items()}


def environment() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.Undefined)
    env.filters["to_json"] = lambda v: json.dumps(v)
    return env


def render(template: str, payload: str) -> str:
    """A value template over one state payload, as Home Assistant renders it."""
    try:
        value_json = json.loads(payload)
    except ValueError:
        value_json = None
    return environment().from_string(template).render(value=payload, value_json=value_json)


def _topic_ok(topic: Any) -> bool:
    return isinstance(topic, str) and bool(topic) and "+" not in topic and "#" not in topic


def _check_availability(opts: dict, where: str) -> list[str]:
    out = []
    avty = opts.get("availability")
    if avty is not None:
        if "availability_topic" in opts:
            out.append(f"{where}: availability and availability_topic together")
        if not isinstance(avty, list) or not avty:
            out.append(f"{where}: availability must be a non-empty list")
        else:
            for a in avty:
                a = expand(a, ABBREVIATIONS) if isinstance(a, dict) else a
                if not isinstance(a, dict) or not _topic_ok(a.get("topic")):
                    out.append(f"{where}: availability entry {a!r} needs a topic")
    mode = opts.get("availability_mode")
    if mode is not None and mode not in ("all", "any", "latest"):
        out.append(f"{where}: availability_mode {mode!r}")
    return out


def check_component(opts: dict, where: str, device_based: bool) -> list[str]:
    """One entity's options (already merged with what it shares with the device)."""
    out = []
    platform = opts.get("platform")
    if platform not in ALL_PLATFORMS:
        return [f"{where}: platform {platform!r} is not an MQTT discovery platform"]
    if platform not in PLATFORMS:
        return [f"{where}: platform {platform!r} not covered by this check"]
    if device_based and not opts.get("unique_id"):
        out.append(f"{where}: entity components need a unique_id")
    known = COMMON | OPTIONS[platform]
    for key in opts:
        if key not in known:
            out.append(f"{where}: {key!r} is not an option of {platform}")
    for key in REQUIRED[platform]:
        if key not in opts:
            out.append(f"{where}: {platform} requires {key}")
    for key, value in opts.items():
        if key.endswith("_topic") and not _topic_ok(value):
            out.append(f"{where}: {key} {value!r} is not a publishable topic")
        if key.endswith("_template"):
            try:
                environment().from_string(value)
            except jinja2.TemplateSyntaxError as e:
                out.append(f"{where}: {key} does not compile: {e}")
    dc = opts.get("device_class")
    if dc is not None and dc not in DEVICE_CLASSES.get(platform, set()):
        out.append(f"{where}: device_class {dc!r} is not one of {platform}")
    if opts.get("state_class") not in (None, *STATE_CLASSES):
        out.append(f"{where}: state_class {opts['state_class']!r}")
    if opts.get("entity_category") not in (None, *ENTITY_CATEGORIES):
        out.append(f"{where}: entity_category {opts['entity_category']!r}")
    if platform == "event":
        types = opts.get("event_types")
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            out.append(f"{where}: event_types must be a non-empty list of strings")
    out += _check_availability(opts, where)
    return out


def _check_device(opts: dict, where: str) -> list[str]:
    dev = opts.get("device")
    if not isinstance(dev, dict):
        return [f"{where}: device mapping required"]
    dev = expand(dev, DEVICE_ABBREVIATIONS)
    out = [
        f"{where}: device key {k!r} unknown" for k in dev if k not in DEVICE_ABBREVIATIONS.values()
    ]
    if not dev.get("identifiers") and not dev.get("connections"):
        out.append(f"{where}: device needs identifiers or connections")
    return out


def _check_origin(opts: dict, where: str, required: bool) -> list[str]:
    origin = opts.get("origin")
    if origin is None:
        return [f"{where}: origin mapping required"] if required else []
    origin = expand(origin, ORIGIN_ABBREVIATIONS) if isinstance(origin, dict) else {}
    out = [
        f"{where}: origin key {k!r} unknown"
        for k in origin
        if k not in ORIGIN_ABBREVIATIONS.values()
    ]
    if not origin.get("name"):
        out.append(f"{where}: origin needs a name")
    return out


def problems(topic: str, payload: str | bytes, prefix: str = "homeassistant") -> list[str]:
    """Every way one discovery message departs from the documented schema."""
    parts = topic.split("/")
    if parts[0] != prefix or parts[-1] != "config" or len(parts) not in (4, 5):
        return [f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config"]
    if not all(ID.match(p) for p in parts[2:-1]):
        return [f"{topic}: node_id/object_id must be [a-zA-Z0-9_-]"]
    try:
        data = json.loads(payload)
    except ValueError as e:
        return [f"{topic}: payload is not JSON: {e}"]
    if not isinstance(data, dict):
        return [f"{topic}: payload is not a JSON object"]
    data = expand(data, ABBREVIATIONS)
    component = parts[1]
    if component == "device":
        if len(parts) != 4:
            return [f"{topic}: device discovery is <prefix>/device/<object_id>/config"]
        out = _check_device(data, topic) + _check_origin(data, topic, required=True)
        out += [f"{topic}: {k!r} is not a shared option" for k in data if k not in SHARED]
        out += _check_availability(data, topic)
        cmps = data.get("components")
        if not isinstance(cmps, dict) or not cmps:
            return [*out, f"{topic}: components (cmps) mapping required"]
        shared = {k: v for k, v in data.items() if k not in ("components",)}
        for cid, comp in cmps.items():
            where = f"{topic} cmps.{cid}"
            if not ID.match(cid):
                out.append(f"{where}: component id must be [a-zA-Z0-9_-]")
            comp = expand(comp, ABBREVIATIONS)
            if set(comp) == {"platform"}:
                continue  # a component being removed
            out += check_component({**shared, **comp}, where, device_based=True)
        return out
    data.setdefault("platform", component)
    out = check_component(data, topic, device_based=False)
    if "device" in data:
        out += _check_device(data, topic)
    return out + _check_origin(data, topic, required=False)


def availability_topics(payload: str | bytes) -> list[str]:
    """The availability topics a discovery payload names (shared ones of the device form)."""
    data = expand(json.loads(payload), ABBREVIATIONS)
    topics = [expand(a, ABBREVIATIONS)["topic"] for a in data.get("availability", [])]
    if "availability_topic" in data:
        topics.append(data["availability_topic"])
    return topics
