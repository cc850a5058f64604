"""The tracks topic: a frame's tracks as one CBOR message, at most ``[link] tracks_hz``.

``<prefix>/<site>/<unit>/tracks``, QoS 0, not retained (docs/mqtt.md, rule ``tracks``): per
track its local id, normalised box, state and, on a calibrated camera, its floor position
and velocity (metres, m/s), else its image foot point. Floats are rounded to centimetres
and encoded in the smallest CBOR float that holds them (bandwidth: tools/bench/fusion.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cbor2
import numpy as np

from firmware.link.messages import CONTRACT_VERSION

QOS = 0


def _r(v: float, nd: int) -> float:
    return round(float(v), nd)


def encode_tracks(
    *,
    time_s: float,
    frame: int,
    session: int,
    ids: np.ndarray,
    boxes: np.ndarray,
    states: Sequence[str],
    floor_xy: np.ndarray | None = None,
    floor_v: np.ndarray | None = None,
) -> bytes:
    """CBOR ``tracks`` message; ``boxes`` (N, 4) normalised x1, y1, x2, y2; floor in metres."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = []
    for k, tid in enumerate(np.asarray(ids).tolist()):
        b = boxes[k]
        t: dict = {"id": int(tid), "box": [_r(x, 4) for x in b], "state": states[k]}
        xy = None if floor_xy is None else floor_xy[k]
        if xy is not None and all(math.isfinite(float(c)) for c in xy):
            t["floor"] = [_r(xy[0], 2), _r(xy[1], 2)]
            v = (0.0, 0.0) if floor_v is None else floor_v[k]
            t["floor_v"] = [_r(v[0], 2), _r(v[1], 2)]
        else:
            t["foot"] = [_r((b[0] + b[2]) / 2, 4), _r(b[3], 4)]
        out.append(t)
    msg = {
        "v": CONTRACT_VERSION,
        "session": int(session),
        "time": float(time_s),
        "frame": int(frame),
        "tracks": out,
    }
    return cbor2.dumps(msg, canonical=True)


class TracksThrottle:
    """Lets a frame's tracks through at most ``hz`` times a second (on the frame clock)."""

    def __init__(self, hz: float) -> None:
        if not hz > 0:
            raise ValueError(f"tracks_hz must be positive, got {hz}")
        self.period = 1.0 / hz
        self._next = -math.inf

    def due(self, t: float) -> bool:
        """True when this frame's tracks should be sent (keeps the average rate at ``hz``)."""
        if t + 1e-9 < self._next:
            return False
        behind = t - self._next > self.period
        self._next = t + self.period if behind else self._next + self.period
        return True


STATE_NAMES = {0: "tentative", 1: "confirmed", 2: "lost"}  # firmware.types.TrackState


class TracksPublisher:
    """The loop's hook: a frame's tracks, normalised and on the floor, to ``link.publish_tracks``
    at most ``hz`` a second (QoS 0: a lost message is superseded by the next one)."""

    def __init__(self, link, hz: float, floor=None) -> None:
        from firmware.floor import FloorMotion

        self.link = link
        self.throttle = TracksThrottle(hz)
        self.motion = FloorMotion(floor) if floor is not None else None
        self.sent = 0

    def __call__(self, tracks, t: float, frame: int, size: tuple[int, int]) -> bool:
        if not self.throttle.due(t):
            return False
        w, h = size
        boxes = np.asarray(tracks.boxes, np.float64).reshape(-1, 4) / [w, h, w, h]
        xy = v = None
        if self.motion is not None:
            xy, v = self.motion.update(tracks.ids, boxes, t)
        payload = encode_tracks(
            time_s=t,
            frame=frame,
            session=int(self.link.session),
            ids=tracks.ids,
            boxes=boxes,
            states=[STATE_NAMES.get(int(s), "confirmed") for s in tracks.states],
            floor_xy=xy,
            floor_v=v,
        )
        ok = bool(self.link.publish_tracks(payload))
        self.sent += ok
        return ok
