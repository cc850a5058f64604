"""The store layer over MQTT: units' tracks -> fusion -> store tracks and store-level rules.

``FuseService`` subscribes to ``<prefix>/<site>/+/tracks``, feeds ``tools.hub.fusion`` on
the units' own clocks, and at every ``tick`` publishes ``<prefix>/<site>/store/tracks``
(QoS 0) and the events of the store rules on ``<prefix>/<site>/store/events`` (QoS 1, the
unit's event contract with ``unit`` = ``store``). ``StoreLoitering`` counts a person's dwell
in a floor zone (metres) across every camera that sees them, by global id.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import cbor2
import cv2
import numpy as np
import paho.mqtt.client as mqtt

from firmware.events.records import Event, EventPhase, Severity
from firmware.link.config import parse_url
from tools.hub.fusion import Fusion, GlobalTrack, Observation

STORE_UNIT = "store"


@dataclass
class StoreZone:
    """A zone drawn on the floor plan: polygon in metres."""

    name: str
    polygon: list[tuple[float, float]]
    purpose: str = "general"

    def contains(self, xy: np.ndarray) -> bool:
        poly = np.asarray(self.polygon, np.float32).reshape(-1, 1, 2)
        return cv2.pointPolygonTest(poly, (float(xy[0]), float(xy[1])), False) >= 0


@dataclass
class StoreLoitering:
    """Loitering on global ids: dwell in a store zone summed over all cameras' sightings."""

    zones: list[StoreZone]
    loiter_s: float = 60.0
    gap_s: float = 3.0  # a person out of the zone (or unseen) this long starts again
    _dwell: dict[tuple[int, str], list[float]] = field(default_factory=dict)  # start, last, fired

    def update(self, tracks: list[GlobalTrack], t: float) -> list[Event]:
        out = []
        for g in tracks:
            if not g.placed:
                continue
            for z in self.zones:
                key = (g.gid, z.name)
                if not z.contains(g.pos):
                    continue
                d = self._dwell.get(key)
                if d is None or t - d[1] > self.gap_s:
                    d = self._dwell[key] = [t, t, 0.0]
                d[1] = t
                if not d[2] and t - d[0] >= self.loiter_s:
                    d[2] = 1.0
                    out.append(self._event(g, z, d, t))
        for key in [k for k, d in self._dwell.items() if t - d[1] > self.gap_s]:
            del self._dwell[key]
        return out

    def _event(self, g: GlobalTrack, z: StoreZone, d: list[float], t: float) -> Event:
        return Event(
            type="loitering",
            rule="store_loitering",
            phase=EventPhase.START,
            severity=Severity.WARN,
            start_time=d[0],
            start_frame=0,
            time=t,
            frame=0,
            zone=z.name,
            track_ids=[g.gid],
            explain={
                "dwell_s": round(t - d[0], 2),
                "threshold_s": self.loiter_s,
                "global_id": g.gid,
                "units": sorted(g.seen_by),
                "floor": [round(float(c), 2) for c in g.pos],
            },
        )


class FuseService:
    """Fusion over MQTT for one site; ``tick()`` publishes store tracks and store events."""

    def __init__(
        self, url: str, site: str, prefix: str = "vigil", rules: list | None = None
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
