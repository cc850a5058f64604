"""Store layer on a real Mosquitto: two units publish tracks, the hub's fusion gives one
person one global id across the hand-over, and loitering split over two cameras fires."""

from __future__ import annotations

import time

import numpy as np
import paho.mqtt.client as mqtt

from firmware.link.tracks import encode_tracks
from tools.hub.client import HubClient
from tools.hub.store import FuseService, StoreLoitering, StoreZone

HZ = 5.0


def _unit(broker) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def test_hand_over_keeps_one_global_id_and_store_loitering_fires(broker):
    url = broker.url
    zone = StoreZone("aisle-3", [(3.0, -1.0), (9.0, -1.0), (9.0, 1.0), (3.0, 1.0)], "high_value")
    svc = FuseService(url, "s1", rules=[StoreLoitering([zone], loiter_s=8.0)]).start()
    with HubClient(url, site="s1") as hub:
        hub.connect()
        a, b = _unit(broker), _unit(broker)
        time.sleep(0.3)
        rng = np.random.default_rng(3)
        t0 = 1_700_000_000.0
        # a shopper walks x = 0 -> 12 m at 0.5 m/s; camera a sees x < 6.5, b sees x > 5.5.
        # Their dwell in the aisle (x 3..9: 12 s) is 7 s on a and 7 s on b: only the sum
        # across the cameras passes the 8 s threshold.
        for k in range(int(24 * HZ)):
            x = 0.5 * k / HZ
            for unit, client, lid, seen, dx in (
                (a, "a", 7, x < 6.5, 0.0),
                (b, "b", 2, x > 5.5, 0.3),
            ):
                boxes = np.array([[0.4, 0.2, 0.5, 0.8]]) if seen else np.zeros((0, 4))
                xy = np.array([[x + dx + rng.normal(0, 0.1), rng.normal(0, 0.1)]])[: len(boxes)]
                payload = encode_tracks(
                    time_s=t0 + k / HZ + (0.3 if unit is b else 0.0),  # b's clock 0.3 s ahead
                    frame=k + 1,
                    session=1,
                    ids=np.array([lid] * len(boxes)),
                    boxes=boxes,
                    states=["confirmed"] * len(boxes),
                    floor_xy=xy,
                    floor_v=np.zeros_like(xy),
                )
                unit.publish(f"vigil/s1/{client}/tracks", payload, qos=0)
            time.sleep(0.01)
            if k % 2:
                svc.tick()
        time.sleep(0.5)
        svc.tick()
        hub.wait_for(lambda r: [m for m in r if m.kind == "events" and m.unit == "store"], 10)
        stores = [m for m in hub.of("tracks", "store")]
        assert stores and all(m.problems == [] for m in stores)
        seen = {}
        for m in stores:
            for tr in m.message["tracks"]:
                for uv in tr["units"]:
                    seen.setdefault(uv["unit"], set()).add(tr["gid"])
        assert seen["a"] == seen["b"] and len(seen["a"]) == 1  # one person, one id, both cameras
        (ev,) = [m for m in hub.of("events", "store")]
        assert ev.problems == []
        e = ev.message
        assert e["type"] == "loitering" and e["zone"] == "aisle-3" and e["unit"] == "store"
        assert set(e["explain"]["units"]) == {"a", "b"}
        assert e["explain"]["dwell_s"] >= 8.0
        a.loop_stop(), b.loop_stop()
    svc.stop()
    assert svc.rejected == 0
