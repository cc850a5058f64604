"""The hub link: events -> on-disk outbox -> CBOR over MQTT (QoS 1), status/birth/Will,
metrics, and signed commands from the hub. The contract is docs/mqtt.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# firmware.link.config needs firmware.config.base, whose package imports the schema, which
# imports firmware.link.config: load the config package first so either import order works.

if TYPE_CHECKING:
    from firmware.link.client import Link
    from firmware.link.control import UnitControl

__all__ = ["Link", "UnitControl"]


def __getattr__(name: str) -> Any:
    # Lazy: firmware.config.schema imports firmware.link.config, which must not pull in the
    # client (and paho) while the config package is still being imported.
    if name == "Link":
        from firmware.link.client import Link

        return Link
    if name == "UnitControl":
        from firmware.link.control import UnitControl

        return UnitControl
    raise AttributeError(name)
