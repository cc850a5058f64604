"""The hub-side reference client: subscribes to a site, decodes and validates every message
against the contract's CDDL, keeps what arrived, and sends signed commands.

Integrators can read this as the executable form of docs/mqtt.md; the tests talk to units
through it.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cbor2
import paho.mqtt.client as mqtt

from firmware.link.config import parse_url


@dataclass(slots=True)
class Received:
    """One message as the hub saw it."""

    topic: str
    kind: str  # status, birth, events, metrics, reply, config/state, cmd/<name>, config/set
    site: str
    unit: str
    payload: bytes
    message: Any  # decoded CBOR (None when it did not decode)
    retained: bool
    problems: list[str] = field(default_factory=list)  # contract violations, empty when valid
    received_at: float = 0.0


class HubClient:
    """Subscribes to ``<prefix>/<site>/#`` (or every site with ``site='+'``).

    ``persistent`` keeps a broker session under ``client_id``: QoS 1 events published while
    the hub is away (or before it first subscribed again) are queued by the broker for it,
    which is how a production hub should connect. The client reconnects by itself.
    """

    def __init__(
        self,
        url: str,
        site: str = "+",
        prefix: str = "vigil",
        *,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        validate: bool = True,
        signer: Any | None = None,
        on_message: Callable[[Received], None] | None = None,
        client_id: str | None = None,
        persistent: bool = False,
    ):
        self.tls, self.host, self.port = parse_url(url)
        self.site, self.prefix = site, prefix
        self.signer = signer
        self.on_received = on_message
        self.validator = None
        if validate:
            try:
                from tools.hub.contract import Validator

                self.validator = Validator()
            except ImportError as e:
                raise RuntimeError(
                    f"cannot check messages against the CDDL ({e}): install the eval extra "
                    "(pip install -e '.[eval]') or pass validate=False / --no-validate"
                ) from None
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"vigil-hub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=not persistent,
        )
        if self.tls:
            self.client.tls_set(
                ca_certs=ca,
                certfile=cert,
                keyfile=key,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(1, 2)  # back quickly after a broker restart
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()

    # -- connection -------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> HubClient:
        self.client.connect(self.host, self.port, 30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"no SUBACK from {self.host}:{self.port} within {timeout} s")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> HubClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            client.subscribe(f"{self.prefix}/{self.site}/#", qos=1)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) < 4:
            return
        site, unit, kind = parts[1], parts[2], "/".join(parts[3:])
        payload = bytes(msg.payload)
        problems: list[str] = []
        try:
            message = cbor2.loads(payload) if payload else None
        except Exception as e:
            message, problems = None, [f"not CBOR: {e}"]
        if not problems and self.validator is not None and payload:
            problems = self.validator.check(f"store/{kind}" if unit == "store" else kind, payload)
        rec = Received(
            msg.topic, kind, site, unit, payload, message, bool(msg.retain), problems, time.time()
        )
        with self._cond:
            self.received.append(rec)
            self._cond.notify_all()
        if self.on_received is not None:
            self.on_received(rec)

    # -- reading ----------------------------------------------------------------------------

    def of(self, kind: str, unit: str | None = None) -> list[Received]:
        with self._cond:
            return [r for r in self.received if r.kind == kind and unit in (None, r.unit)]

    def wait_for(self, pred: Callable[[list[Received]], Any], timeout: float = 10.0) -> Any:
        """Wait until ``pred(received)`` is truthy; returns its value or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = pred(self.received)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                self._cond.wait(min(left, 0.2))

    def events(self, unit: str | None = None, dedup: bool = True) -> list[dict]:
        """Events in arrival order; with ``dedup`` a msg_id seen before is dropped."""
        out, seen = [], set()
        for r in self.of("events", unit):
            m = r.message
            if not isinstance(m, dict):
                continue
            if dedup:
                if m.get("msg_id") in seen:
                    continue
                seen.add(m.get("msg_id"))
            out.append(m)
        return out

    def statuses(self, unit: str | None = None) -> list[str]:
        return [
            r.message.get("state") for r in self.of("status", unit) if isinstance(r.message, dict)
        ]

    # -- commands ---------------------------------------------------------------------------

    def send_raw(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def command(
        self,
        unit: str,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        site: str | None = None,
        timeout: float = 10.0,
        wait: bool = True,
    ) -> dict | None:
        """Sign and send ``cmd/<name>`` (or ``config/set`` for name 'config/set'); returns the
        reply with the same request id (or None when ``wait`` is False)."""
        if self.signer is None:
            raise RuntimeError("no hub key: HubClient(signer=Signer.load(key_path))")
        site = site or self.site
        if site == "+":
            raise ValueError("say which site the unit is in")
        topic = command_topic(self.prefix, site, unit, name)
        request_id = uuid.uuid4().hex[:16]
        self.send_raw(topic, self.signer.sign(topic, request_id, args or {}))
        if not wait:
            return None
        return self.reply(unit, request_id, timeout)

    def reply(self, unit: str, request_id: str, timeout: float = 10.0) -> dict:
        def find(received: list[Received]) -> dict | None:
            for r in received:
                m = r.message
                if r.kind == "reply" and r.unit == unit and _has_id(m, request_id):
                    return m
            return None

        return self.wait_for(find, timeout)


def command_topic(prefix: str, site: str, unit: str, name: str) -> str:
    if name == "config/set":
        return f"{prefix}/{site}/{unit}/config/set"
    return f"{prefix}/{site}/{unit}/cmd/{name}"


def _has_id(message: Any, request_id: str) -> bool:
    return isinstance(message, dict) and message.get("id") == request_id
