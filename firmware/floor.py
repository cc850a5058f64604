"""Floor calibration: image foot points -> metres on the store plan, and floor velocities.

``[camera.floor]`` holds either ``points`` (four or more ``[u, v, x, y]``: normalised image
coordinates -> metres, as integrators click them on a floor plan) fitted robustly (RANSAC
then a least-squares refit on the inliers) to a homography, or a ``homography`` given
directly; optionally radial lens distortion ``[k1, k2]`` removed first. The fit is refused
when the points are degenerate (collinear) or any point reprojects farther than
``max_error_m`` from where it was clicked, naming that point and its error.
"""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np
from pydantic import Field, model_validator

from firmware.config.base import Section

FloorPoint = tuple[float, float, float, float]  # u, v (0..1), x, y (metres)


class FloorConfig(Section):
    points: list[FloorPoint] | None = Field(
        None,
        description="Four or more [u, v, x, y]: normalised image point -> metres on the store plan",
    )
    homography: (
        tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
        | None
    ) = Field(
        None, description="3x3 image (normalised) -> floor (metres) matrix, instead of points"
    )
    distortion: tuple[float, float] = Field(
        (0.0, 0.0),
        description="Radial lens distortion [k1, k2] on centred coordinates 2(u-0.5), 2(v-0.5); removed before the homography",
    )
    max_error_m: Annotated[float, Field(gt=0, le=10)] = Field(
        0.25, description="Refuse points whose reprojection error exceeds this (metres)"
    )

    @model_validator(mode="after")
    def _fit(self) -> FloorConfig:
        if (self.points is None) == (self.homography is None):
            raise ValueError("give either points or homography")
        floor_map(self)  # raises ValueError naming the bad point
        return self


class FloorMap:
    """A fitted calibration: ``to_floor`` maps (N, 2) normalised image points to metres."""

    def __init__(self, h: np.ndarray, distortion: tuple[float, float] = (0.0, 0.0)) -> None:
        self.h = np.asarray(h, np.float64)
        self.k1, self.k2 = distortion
        self.errors_m: np.ndarray | None = None  # per-point reprojection error of a fit

    def undistort(self, uv: np.ndarray) -> np.ndarray:
        """Remove radial distortion (fixed-point inversion, a few iterations suffice)."""
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        if self.k1 == 0 and self.k2 == 0:
            return uv
        d = 2 * (uv - 0.5)
        p = d.copy()
        for _ in range(8):
            r2 = (p**2).sum(axis=1, keepdims=True)
            p = d / (1 + self.k1 * r2 + self.k2 * r2 * r2)
        return p / 2 + 0.5

    def to_floor(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) normalised image points -> (N, 2) metres; NaN beyond the horizon."""
        p = self.undistort(uv)
        q = np.column_stack([p, np.ones(p.shape[0])]) @ self.h.T
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = q[:, :2] / q[:, 2:3]
        xy[~(q[:, 2] > 1e-12)] = np.nan
        return xy


def _collinear(pts: np.ndarray) -> bool:
    c = pts - pts.mean(axis=0)
    s = np.linalg.svd(c, compute_uv=False)
    return s[0] == 0 or s[1] / s[0] < 1e-3


def floor_map(cfg: FloorConfig) -> FloorMap:
    """Fit (or take) the homography; ValueError names a degenerate set or the worst point."""
    if cfg.homography is not None:
        h = np.asarray(cfg.homography, np.float64)
        if not np.isfinite(h).all() or np.linalg.svd(h, compute_uv=False)[-1] < 1e-12:
            raise ValueError("homography: must be a finite, invertible 3x3 matrix")
        return FloorMap(h, cfg.distortion)
    pts = np.asarray(cfg.points, np.float64)
    if len(pts) < 4:
        raise ValueError(f"points: need at least 4 [u, v, x, y] pairs, got {len(pts)}")
    if not np.isfinite(pts).all():
        raise ValueError("points: values must be finite numbers")
    for i, (u, v, _, _) in enumerate(pts):
        if not (0 <= u <= 1 and 0 <= v <= 1):
            raise ValueError(f"points[{i}]: image point ({u}, {v}) is outside 0..1")
    fm = FloorMap(np.eye(3), cfg.distortion)
    uv, xy = fm.undistort(pts[:, :2]), pts[:, 2:]
    for what, p in (("image", uv), ("floor", xy)):
        if _collinear(p):
            raise ValueError(
                f"points: the {what} points are collinear (degenerate; spread them out)"
            )
    if len(pts) == 4:
        for i in range(4):
            if _collinear(np.delete(uv, i, axis=0)) or _collinear(np.delete(xy, i, axis=0)):
                raise ValueError(
                    "points: three of the four points are collinear (degenerate; spread them out)"
                )
    method = cv2.RANSAC if len(pts) > 4 else 0
    h, _ = cv2.findHomography(uv, xy, method, cfg.max_error_m)
    if h is None:
        raise ValueError("points: no homography fits them (degenerate set)")
    fm.h = h
    err = np.linalg.norm(FloorMap(h).to_floor(uv) - xy, axis=1)
    err[~np.isfinite(err)] = np.inf
    fm.errors_m = err
    bad = np.flatnonzero(err > cfg.max_error_m)
    if bad.size:
        worst = ", ".join(f"points[{i}] {err[i]:.2f} m" for i in bad)
        raise ValueError(
            f"reprojection error over max_error_m {cfg.max_error_m} m: {worst} "
            "(check those clicks; the other points agree)"
        )
    return fm


def point_report(cfg: FloorConfig) -> list[str]:
    """One line per calibration point with its reprojection error (for `vigil config check`)."""
    fm = floor_map(cfg)
    if fm.errors_m is None:
        return ["camera.floor: homography given directly"]
    return [
        f"camera.floor.points[{i}] ({u:g}, {v:g}) -> ({x:g}, {y:g}) m: error {e:.3f} m"
        for i, ((u, v, x, y), e) in enumerate(zip(cfg.points or [], fm.errors_m, strict=True))
    ]


def _foot_points(boxes: np.ndarray) -> np.ndarray:
    """Bottom-centre (N, 2) of normalised x1, y1, x2, y2 boxes: where a person stands, as the
    zones use it (firmware.rules.zones.foot_points, which this module cannot import)."""
    return np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]])


class FloorMotion:
    """Per local track floor position and velocity (m, m/s), from its foot points over time."""

    def __init__(self, floor: FloorMap, smoothing: float = 0.5, max_age_s: float = 5.0) -> None:
        self.floor = floor
        self.smoothing = smoothing
        self.max_age_s = max_age_s
        self._state: dict[int, tuple] = {}  # id -> pos, vel, t, velocity known

    def update(self, ids: np.ndarray, boxes: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``boxes`` (N, 4) normalised x1, y1, x2, y2 -> (N, 2) positions and (N, 2) velocities."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        pos = self.floor.to_floor(_foot_points(boxes))
        vel = np.zeros_like(pos)
        for k, tid in enumerate(np.asarray(ids).tolist()):
            prev = self._state.get(tid)
            have_v = prev is not None and prev[3]
            if prev is not None and t > prev[2] and np.isfinite(pos[k]).all():
                inst = (pos[k] - prev[0]) / (t - prev[2])
                vel[k] = self.smoothing * prev[1] + (1 - self.smoothing) * inst if have_v else inst
                have_v = True
            self._state[tid] = (pos[k], vel[k], t, have_v)
        for tid in [i for i, st in self._state.items() if t - st[2] > self.max_age_s]:
            del self._state[tid]
        return pos, vel


class EventFloor:
    """Stamps events with the floor position (m) of their tracks: the loop updates it every
    frame (``update``) and the event bus runs it before the recorder (``stamp``), so every
    consumer, the hub link included, sees ``event.floor``. A track that has left keeps its
    last position for ``max_age_s`` (an event that ends after its track)."""

    def __init__(self, floor: FloorMap, max_age_s: float = 10.0) -> None:
        self.floor = floor
        self.max_age_s = max_age_s
        self._last: dict[int, tuple[float, float, float]] = {}  # id -> x, y, time

    def update(self, ids: np.ndarray, boxes: np.ndarray, size: tuple[int, int], t: float) -> None:
        """This frame's tracks: ``boxes`` (N, 4) pixel x1, y1, x2, y2 on a ``size`` (w, h) image."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes):
            w, h = size
            foot = _foot_points(boxes / [w, h, w, h])
            for tid, (x, y) in zip(
                np.asarray(ids).tolist(), self.floor.to_floor(foot), strict=True
            ):
                if np.isfinite(x) and np.isfinite(y):
                    self._last[int(tid)] = (float(x), float(y), t)
        for tid in [k for k, v in self._last.items() if t - v[2] > self.max_age_s]:
            del self._last[tid]

    def stamp(self, event) -> None:
        """Sets ``event.floor`` for the event's tracks that have a position (none: left unset)."""
        if event.floor is not None or not event.track_ids:
            return
        out = [
            {"id": int(tid), "floor": [round(p[0], 2), round(p[1], 2)]}
            for tid in event.track_ids
            if (p := self._last.get(int(tid))) is not None
        ]
        if out:
            event.floor = out
