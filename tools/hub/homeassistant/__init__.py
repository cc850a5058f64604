"""Home Assistant bridge of the hub: MQTT discovery, JSON state topics mirrored from the CBOR
contract, and switch/button presses turned into signed commands (docs/homeassistant.md)."""

from tools.hub.homeassistant.bridge import HomeAssistantBridge
from tools.hub.homeassistant.config import HomeAssistantConfig, load_hub_config
from tools.hub.homeassistant.core import BridgeCore

__all__ = ["BridgeCore", "HomeAssistantBridge", "HomeAssistantConfig", "load_hub_config"]
