"""Constant-velocity Kalman filter over all tracks at once, in elementwise numpy.

State per track: box centre and size ``cx, cy, w, h`` (pixels) and their velocities in
pixels per second. With a constant-velocity model, diagonal noise and a position-only
measurement, the 8-state filter splits exactly into four independent (position, velocity)
filters, one per coordinate; each keeps a 2x2 covariance as three numbers (pp, pv, vv).
So predict and update for N tracks are a handful of elementwise operations on (N,4)
arrays: no matrix products, no inversions. Noise scales with the box size (as in
ByteTrack/BoT-SORT) so near and far people are treated alike; process noise grows with the
elapsed time, so skipped frames and irregular timestamps are handled by predicting over the
real interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """(N,4) x1,y1,x2,y2 -> (N,4) cx,cy,w,h as float64."""
    b = np.asarray(boxes, np.float64)
    out = np.empty_like(b)
    out[:, 2:] = b[:, 2:] - b[:, :2]
    out[:, :2] = b[:, :2] + 0.5 * out[:, 2:]
    return out


def cxcywh_to_xyxy(z: np.ndarray) -> np.ndarray:
    """(N,4) cx,cy,w,h -> (N,4) x1,y1,x2,y2."""
    out = np.empty_like(z)
    half = 0.5 * z[:, 2:4]
    out[:, :2] = z[:, :2] - half
    out[:, 2:] = z[:, :2] + half
    return out


@dataclass
class KalmanState:
    """Per-track filter state: ``x`` (N,4) cx,cy,w,h; ``v`` (N,4) their rates per second;
    covariance per coordinate ``pp`` (position), ``pv`` (cross), ``vv`` (velocity)."""

    x: np.ndarray
    v: np.ndarray
    pp: np.ndarray
    pv: np.ndarray
    vv: np.ndarray

    FIELDS = ("x", "v", "pp", "pv", "vv")

    @classmethod
    def empty(cls) -> KalmanState:
        return cls(*(np.zeros((0, 4)) for _ in cls.FIELDS))


class BatchKalman:
    """Kalman maths for N tracks stacked in a :class:`KalmanState`.

    ``fps`` converts the per-frame noise weights into per-second terms so that one frame's
    prediction at the nominal rate behaves like ByteTrack's per-frame filter.
    """

    def __init__(self, fps: float, std_position: float, std_velocity: float) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.std_pos = float(std_position)
        self.std_vel = float(std_velocity)

    @staticmethod
    def _scale(x: np.ndarray) -> np.ndarray:
        # w scales x and w, h scales y and h; a floor keeps degenerate boxes well-conditioned.
        s = np.maximum(x[:, (2, 3, 2, 3)], 1.0)
        return s

    def initiate(self, z: np.ndarray) -> KalmanState:
        """New tracks at measurements ``z`` (N,4 cxcywh): zero velocity, wide velocity prior."""
        s2 = self._scale(z) ** 2
        return KalmanState(
            x=np.array(z, np.float64),
            v=np.zeros_like(z, np.float64),
            pp=(2 * self.std_pos) ** 2 * s2,
            pv=np.zeros_like(s2),
            vv=(10 * self.std_vel * self.fps) ** 2 * s2,
        )

    def predict(self, k: KalmanState, dt: float) -> None:
        """Predict every track ``dt`` seconds ahead, in place."""
        if dt <= 0 or k.x.shape[0] == 0:
            return
        frames = dt * self.fps
        s2 = self._scale(k.x) ** 2
        k.x += k.v * dt
        k.pp += dt * (2 * k.pv + dt * k.vv) + (self.std_pos**2 * frames) * s2
        k.pv += dt * k.vv
        k.vv += ((self.std_vel * self.fps) ** 2 * frames) * s2

    def update(self, k: KalmanState, matched: np.ndarray, z: np.ndarray) -> None:
        """Correct the tracks where ``matched`` (N,) is set with ``z`` (N,4 cxcywh; rows of
        unmatched tracks are ignored), in place. Works on whole arrays (no gathering), which
        is cheaper than indexing when most tracks are matched, as they usually are."""
        x, pp, pv = k.x, k.pp, k.pv
        s = pp + self.std_pos**2 * self._scale(x) ** 2
        m = matched[:, None]
        gp = np.where(m, pp / s, 0.0)
        gv = np.where(m, pv / s, 0.0)
        innov = np.where(m, z - x, 0.0)
        x += gp * innov
        k.v += gv * innov
        k.vv -= gv * pv
        pv *= 1.0 - gp
        pp *= 1.0 - gp
