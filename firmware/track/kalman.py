"""Constant-velocity Kalman filter over all tracks at once (batched numpy, no per-track loop).

State per track: ``cx, cy, w, h`` (box centre and size, pixels) and their velocities in
pixels per second. Noise scales with the box size (as in ByteTrack/BoT-SORT), so near and far
people are treated alike; process noise grows with the elapsed time, so skipped frames and
irregular timestamps are handled by predicting over the real interval.
"""

from __future__ import annotations

import numpy as np


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """(N,4) x1,y1,x2,y2 -> (N,4) cx,cy,w,h as float64."""
    b = np.asarray(boxes, np.float64)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h, w, h], axis=1)


def cxcywh_to_xyxy(z: np.ndarray) -> np.ndarray:
    """(N,4) cx,cy,w,h -> (N,4) x1,y1,x2,y2."""
    half = 0.5 * z[:, 2:4]
    return np.concatenate([z[:, 0:2] - half, z[:, 0:2] + half], axis=1)


class BatchKalman:
    """Kalman filter maths for N tracks stacked in arrays ``mean (N,8)`` and ``cov (N,8,8)``.

    ``fps`` converts the per-frame noise weights into per-second terms so that one frame's
    prediction at the nominal rate behaves like ByteTrack's per-frame filter.
    """

    def __init__(self, fps: float, std_position: float, std_velocity: float) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.std_pos = float(std_position)
        self.std_vel = float(std_velocity)

    def _size_scale(self, z: np.ndarray) -> np.ndarray:
        # w scales x and w, h scales y and h; floors keep degenerate boxes well-conditioned.
        w = np.maximum(z[:, 2], 1.0)
        h = np.maximum(z[:, 3], 1.0)
        return np.stack([w, h, w, h], axis=1)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from measurements ``z`` (N,4 cxcywh): zero velocity, wide velocity prior."""
        n = z.shape[0]
        mean = np.zeros((n, 8))
        mean[:, :4] = z
        s = self._size_scale(z)
        std = np.concatenate([2 * self.std_pos * s, 10 * self.std_vel * self.fps * s], axis=1)
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(
        self, mean: np.ndarray, cov: np.ndarray, dt: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict every track ``dt`` seconds ahead (scalar or per-track array)."""
        if mean.shape[0] == 0:
            return mean, cov
        dt = np.broadcast_to(np.asarray(dt, np.float64), (mean.shape[0],))
        frames = np.maximum(dt * self.fps, 0.0)
        s = self._size_scale(mean[:, :4])
        q = np.concatenate([(self.std_pos * s) ** 2, (self.std_vel * self.fps * s) ** 2], axis=1)
        q *= frames[:, None]
        new_mean = mean.copy()
        new_mean[:, :4] += mean[:, 4:] * dt[:, None]
        # F P F^T with F = [[I, dt I], [0, I]], written blockwise to avoid 8x8 matmuls.
        d = dt[:, None, None]
        p11, p12, p21, p22 = cov[:, :4, :4], cov[:, :4, 4:], cov[:, 4:, :4], cov[:, 4:, 4:]
        new_cov = np.empty_like(cov)
        new_cov[:, :4, :4] = p11 + d * (p12 + p21) + d * d * p22
        new_cov[:, :4, 4:] = p12 + d * p22
        new_cov[:, 4:, :4] = p21 + d * p22
        new_cov[:, 4:, 4:] = p22
        idx = np.arange(8)
        new_cov[:, idx, idx] += q
        return new_mean, new_cov

    def update(
        self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct tracks with measurements ``z`` (N,4 cxcywh), one row per track."""
        if mean.shape[0] == 0:
            return mean, cov
        r = (self.std_pos * self._size_scale(mean[:, :4])) ** 2
        s_mat = cov[:, :4, :4].copy()
        idx = np.arange(4)
        s_mat[:, idx, idx] += r
        pht = cov[:, :, :4]  # P H^T
        gain = np.linalg.solve(s_mat, np.swapaxes(pht, 1, 2))  # (N,4,8) = S^-1 H P
        gain = np.swapaxes(gain, 1, 2)  # (N,8,4)
        innov = z - mean[:, :4]
        new_mean = mean + np.einsum("nij,nj->ni", gain, innov)
        new_cov = cov - gain @ cov[:, :4, :]
        return new_mean, new_cov
