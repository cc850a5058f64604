"""The tracks topic from a real unit (demo clip, real Mosquitto) and the publisher's floor fields."""

from __future__ import annotations

import cbor2
import numpy as np

from firmware.floor import FloorMap
from firmware.link.tracks import TracksPublisher
from firmware.types import Tracks
from tests.test_unit_hub import running_unit  # noqa: F401  (fixture)
from tools.hub.contract import Validator


def test_running_unit_publishes_valid_tracks_at_tracks_hz(running_unit):  # noqa: F811
    unit, hub, _, _ = running_unit
    hub.wait_for(lambda rx: len([m for m in rx if m.kind == "tracks"]) >= 6, timeout=60)
    got = [m for m in hub.of("tracks", "demo-unit")]
    assert len(got) >= 6
    assert all(m.problems == [] and not m.retained for m in got)
    times = [m.message["time"] for m in got]
    assert min(np.diff(times)) >= 1 / 5 - 1e-6  # default tracks_hz 5, on the frame clock
    assert any(m.message["tracks"] for m in got)
    track = next(t for m in got for t in m.message["tracks"])
    assert "foot" in track and "floor" not in track  # the demo camera has no [camera.floor]


class _Recorder:
    session = 4

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def publish_tracks(self, payload: bytes) -> bool:
        self.payloads.append(payload)
        return True


def test_publisher_adds_floor_position_and_velocity():
    link = _Recorder()
    pub = TracksPublisher(link, 5.0, FloorMap(np.diag([10.0, 10.0, 1.0])))
    for k in range(10):  # 1 m/s on a floor 10 m across the image
        x = 100 + 10 * k  # px in a 1000 px wide frame, 10 fps
        tr = Tracks.empty()
        tr.ids = np.array([3])
        tr.boxes = np.array([[x - 20, 100, x + 20, 600]], np.float32)
        tr.states = np.array([1], np.int8)
        pub(tr, k / 10, k + 1, (1000, 1000))
    assert pub.sent == len(link.payloads) == 5
    v = Validator()
    assert all(v.check("tracks", p) == [] for p in link.payloads)
    last = cbor2.loads(link.payloads[-1])["tracks"][0]
    assert last["floor"] == [1.8, 6.0] and last["state"] == "confirmed"
    np.testing.assert_allclose(last["floor_v"], [1.0, 0.0], atol=0.01)
