"""The store layer over MQTT: units' tracks -> fusion -> store tracks and store-level rules.

``FuseService`` subscribes to ``<prefix>/<site>/+/tracks``, feeds ``tools.hub.fusion`` on
the units' own clocks, and at every ``tick`` publishes ``<prefix>/<site>/store/tracks``
(QoS 0) and the events of the store rules on ``<prefix>/<site>/store/events`` (QoS 1, the
unit's event contract with ``unit`` = ``store``). The rules (loitering across cameras,
grab-and-run across cameras, return visits) are in ``tools.hub.store_rules``.
"""

from __future__ import annotations

import os
import threading

import cbor2
import numpy as np
import paho.mqtt.client as mqtt

from firmware.events.records import Event
from firmware.link.config import parse_url
from tools.hub.fusion import Fusion, Observation
from tools.hub.store_rules import (  # noqa: F401  (re-exported: the store layer's rules)
    StoreGrabAndRun,
    StoreLoitering,
    StoreReturnVisit,
    StoreRule,
    StoreZone,
)

STORE_UNIT = "store"


class FuseService:
    """Fusion over MQTT for one site; ``tick()`` publishes store tracks and store events."""

    def __init__(
        self, url: str, site: str, prefix: str = "vigil", rules: list[StoreRule] | None = None
    ) -> None:
        _, self.host, self.port = parse_url(url)
        self.site, self.prefix = site, prefix
        self.fusion = Fusion()
        self.rules = rules or []
        self.session = int.from_bytes(os.urandom(3), "big")
        self.seq = 0
        self.rejected = 0  # undecodable or malformed tracks messages
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def topic(self, kind: str) -> str:
        return f"{self.prefix}/{self.site}/{STORE_UNIT}/{kind}"

    def start(self) -> FuseService:
        self.client.connect_async(self.host, self.port)  # the loop retries while the broker is down
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe(f"{self.prefix}/{self.site}/+/tracks", qos=0)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        unit = msg.topic.split("/")[2]
        if unit == STORE_UNIT:
            return
        try:
            m = cbor2.loads(msg.payload)
            tracks = m["tracks"]
            ids = np.array([int(t["id"]) for t in tracks], np.int64)
            xy = np.array([t.get("floor", (np.nan, np.nan)) for t in tracks], np.float64).reshape(
                -1, 2
            )
            obs = Observation(unit, float(m["time"]), int(m["frame"]), ids, xy)
        except (ValueError, KeyError, TypeError, cbor2.CBORDecodeError):
            self.rejected += 1
            return
        with self._lock:
            self.fusion.add(obs)

    def people(self) -> list[dict]:
        """Store-wide people at their fused floor positions (m), for the console's plan."""
        with self._lock:
            tracks = self.fusion.tracks()
        return [
            {"id": g.gid, "x": float(g.pos[0]), "y": float(g.pos[1]), "units": sorted(g.seen_by)}
            for g in tracks
            if g.placed
        ]

    def tick(self) -> list[Event]:
        """Advance fusion to the latest unit time, publish store tracks and any events."""
        with self._lock:
            now = max([self.fusion.clock] + [q[0] for q in self.fusion._queue], default=-np.inf)
            if not np.isfinite(now):
                return []
            self.fusion.step(now)
            payload = self.fusion.store_tracks()
            events = [e for r in self.rules for e in r.update(self.fusion.tracks(), now)]
        self.client.publish(self.topic("tracks"), payload, qos=0)
        for e in events:
            e.seq, e.unit, e.site = self.seq, STORE_UNIT, self.site
            self.seq += 1
            body = {**e.to_dict(), "session": self.session, "msg_id": os.urandom(16).hex()}
            self.client.publish(self.topic("events"), cbor2.dumps(body), qos=1)
        return events
