"""``HomeAssistantBridge``: the bridge on its own MQTT connection (``vigil-hub homeassistant``,
and what ``vigil-hub serve --homeassistant`` mounts).

    bridge = HomeAssistantBridge(url, site, prefix, signer=Signer.load(key), cfg=cfg).start()
    ...
    bridge.stop()

The connection's Will sets the bridge's availability topic ``offline``, so Home Assistant
shows every Vigil entity unavailable when the hub is gone, not stale values.
"""

from __future__ import annotations

import logging
import ssl
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from firmware.link.config import parse_url
from tools.hub.homeassistant.config import HomeAssistantConfig
from tools.hub.homeassistant.core import BridgeCore

log = logging.getLogger("vigil-hub.homeassistant")

TICK_S = 0.5


class HomeAssistantBridge:
    """Connects, subscribes to ``core.subscriptions()``, feeds ``core.on_message`` and calls
    ``core.tick`` twice a second; reconnects by itself."""

    def __init__(
        self,
        url: str,
        site: str = "+",
        prefix: str = "vigil",
        *,
        signer: Any | None,
        cfg: HomeAssistantConfig | None = None,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        validate: bool = True,
        client_id: str | None = None,
    ):
        self.url = url
        self.tls, self.host, self.port = parse_url(url)
        validator = None
        if validate:
            try:
                from tools.hub.contract import Validator

                validator = Validator()
            except ImportError as e:
                log.warning("homeassistant: no CDDL check (%s); install the eval extra", e)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"vigil-hub-ha-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self.core = BridgeCore(
            self._publish, signer, cfg, site=site, prefix=prefix, validator=validator
        )
        if self.tls:
            self.client.tls_set(
                ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED
            )
        self.client.will_set(self.core.bridge_availability, "offline", qos=1, retain=True)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(1, 5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> HomeAssistantBridge:
        """Connect in the background (a broker away at start is retried, not fatal)."""
        self._stop.clear()
        self.client.connect_async(self.host, self.port, 30)
        self.client.loop_start()
        self._ticker = threading.Thread(target=self._tick, name="vigil-ha-tick", daemon=True)
        self._ticker.start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> HomeAssistantBridge:
        if not self.connected.wait(timeout):
            raise TimeoutError(f"no connection to {self.url} within {timeout} s")
        return self

    def stop(self) -> None:
        """Say ``offline`` on the bridge's availability topic and disconnect."""
        self._stop.set()
        if self.connected.is_set():
            info = self.client.publish(self.core.bridge_availability, "offline", qos=1, retain=True)
            info.wait_for_publish(3)
        self.client.disconnect()
        self.client.loop_stop()
        if self._ticker is not None:
            self._ticker.join(5)

    def _publish(self, topic: str, payload: str | bytes, qos: int, retain: bool) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            log.error("homeassistant: %s refused the connection: %s", self.url, reason)
            return
        client.subscribe([(t, 1) for t in self.core.subscriptions()])
        self.core.on_connect()
        self.connected.set()
        log.info("homeassistant: connected to %s", self.url)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self.connected.clear()
        if reason.is_failure and not self._stop.is_set():
            log.warning("homeassistant: lost %s (%s); reconnecting", self.url, reason)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        self.core.on_message(msg.topic, bytes(msg.payload), bool(msg.retain))

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self.core.tick()
