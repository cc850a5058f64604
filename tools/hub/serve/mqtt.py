"""The hub service's MQTT side: one persistent QoS 1 session on ``<prefix>/<site>/#`` feeding
ingest (acknowledged after commit), and signed commands with their replies."""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from firmware.link.config import parse_url
from tools.hub.client import command_topic
from tools.hub.serve.ingest import Ingest, Message

log = logging.getLogger("vigil-hub.mqtt")


class HubSession:
    """Connects with ``clean_session = False`` under a fixed client id, so the broker queues
    the site's QoS 1 messages while the hub is away; reconnects by itself."""

    def __init__(
        self,
        url: str,
        site: str,
        ingest: Ingest,
        *,
        prefix: str = "vigil",
        client_id: str | None = None,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        signer: Any | None = None,
    ):
        self.tls, self.host, self.port = parse_url(url)
        self.url, self.site, self.prefix, self.ingest = url, site, prefix, ingest
        self.signer = signer
        cid = client_id or f"vigil-hub-serve-{'all' if site == '+' else site}"
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=cid,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        if self.tls:
            self.client.tls_set(
                ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED
            )
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(1, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self._replies: dict[str, tuple[threading.Event, list]] = {}
        ingest.ack = self._ack
        ingest.subscribe(self._on_reply, {"reply"})

    def start(self) -> HubSession:
        """Connect in the background: a broker that is away at start is retried, not fatal."""
        self.client.connect_async(self.host, self.port, 30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            log.error("mqtt: %s refused the connection: %s", self.url, reason)
            return
        client.subscribe(f"{self.prefix}/{self.site}/#", qos=1)
        self.connected.set()
        log.info("mqtt: connected to %s, subscribed to %s/%s/#", self.url, self.prefix, self.site)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("mqtt: lost %s (%s); reconnecting", self.url, reason)

    def _on_message(self, client, userdata, m: mqtt.MQTTMessage) -> None:
        parts = m.topic.split("/")
        kind = "/".join(parts[3:])
        if len(parts) > 2 and parts[2] == "store" and kind != "events":
            kind = f"store/{kind}"  # the hub's own level: fused store tracks
        # store events (store rules) are events of the unit "store": stored, alerts, cases
        msg = Message(
            topic=m.topic,
            site=parts[1] if len(parts) > 1 else "",
            unit=parts[2] if len(parts) > 2 else "",
            kind=kind,
            payload=bytes(m.payload),
            received_at=time.time(),
            retained=bool(m.retain),
            mid=m.mid if m.qos > 0 else None,
            qos=m.qos,
        )
        if len(parts) < 4:
            msg.problems = [f"topic {m.topic!r} is not <prefix>/<site>/<unit>/<kind>"]
        self.ingest.put(msg)

    def _ack(self, msg: Message) -> None:
        try:
            self.client.ack(msg.mid, msg.qos)
        except Exception as e:  # connection gone: the broker redelivers in the session
            log.debug("mqtt: ack %s failed: %s", msg.mid, e)

    # -- commands ---------------------------------------------------------------------------

    def _on_reply(self, msg: Message) -> None:
        rid = msg.body.get("id") if isinstance(msg.body, dict) else None
        waiter = self._replies.get(rid) if rid else None
        if waiter is not None:
            waiter[1].append(msg.body)
            waiter[0].set()

    def command(
        self, site: str, unit: str, name: str, args: dict[str, Any], timeout: float = 10.0
    ) -> dict:
        """Sign and publish a command; the unit's reply (or a timeout error) as a dict."""
        if self.signer is None:
            raise PermissionError("the hub has no command key: start it with --key HUB_KEY.pem")
        topic = command_topic(self.prefix, site, unit, name)
        rid = uuid.uuid4().hex[:16]
        done: tuple[threading.Event, list] = (threading.Event(), [])
        self._replies[rid] = done
        try:
            info = self.client.publish(topic, self.signer.sign(topic, rid, args), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"broker {self.url} not reachable: command not sent")
            if not done[0].wait(timeout):
                raise TimeoutError(f"no reply from {site}/{unit} to {name} within {timeout} s")
            return done[1][0]
        finally:
            self._replies.pop(rid, None)
