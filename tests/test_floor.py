"""Floor calibration ([camera.floor], firmware/floor.py): fit, per-point errors, refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest

from firmware.cli import main
from firmware.config import ConfigError, parse_text
from firmware.floor import FloorConfig, FloorMap, FloorMotion, floor_map

# a camera looking down a 10 x 6 m floor: a true homography to generate the clicks
TRUE_H = np.array([[8.0, 1.0, -1.0], [0.5, 12.0, -2.0], [0.1, 0.9, 1.0]])


def _clicks(n: int = 8, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    uv = rng.uniform(0.1, 0.9, (n, 2))
    xy = FloorMap(TRUE_H).to_floor(uv) + rng.normal(0, 0.01, (n, 2))  # 1 cm click noise
    return [[float(a), float(b), float(c), float(d)] for (a, b), (c, d) in zip(uv, xy, strict=True)]


def _toml(points: list[list[float]], extra: str = "") -> str:
    return f"[camera.floor]\npoints = {points!r}\n{extra}"


def test_points_fit_recovers_the_floor_and_reports_each_point(tmp_path, capsys):
    pts = _clicks()
    fm = floor_map(FloorConfig(points=pts))
    assert fm.errors_m is not None and fm.errors_m.max() < 0.05
    probe = np.array([[0.5, 0.5], [0.2, 0.8]])
    np.testing.assert_allclose(fm.to_floor(probe), FloorMap(TRUE_H).to_floor(probe), atol=0.05)
    path = tmp_path / "site.toml"
    path.write_text(_toml(pts))
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    for i in range(len(pts)):
        assert f"camera.floor.points[{i}]" in out
    assert "error 0.0" in out


def test_one_wrong_point_is_reported_with_its_error():
    pts = _clicks()
    pts[3][2] += 1.5  # a click 1.5 m off on the plan
    with pytest.raises(ConfigError) as e:
        parse_text(_toml(pts))
    text = str(e.value.problems)
    assert "camera.floor" in text and re.search(r"points\[3\] 1\.[45]\d m", text)
    assert "points[0]" not in text  # the robust fit keeps the good points good


def test_limit_is_configurable():
    pts = _clicks()
    pts[3][2] += 0.4
    with pytest.raises(ConfigError):
        parse_text(_toml(pts))
    cfg = parse_text(_toml(pts, "max_error_m = 1.0"))
    assert cfg.camera.floor.max_error_m == 1.0


@pytest.mark.parametrize(
    "points",
    [
        [[0.1, 0.1, 0, 0], [0.2, 0.2, 1, 1], [0.3, 0.3, 2, 2], [0.4, 0.4, 3, 3], [0.5, 0.5, 4, 4]],
        [[0.1, 0.5, 0, 0], [0.9, 0.5, 1, 0], [0.5, 0.5, 0, 1], [0.5, 0.9, 1, 1]],
    ],
    ids=["all-collinear", "three-of-four-collinear"],
)
def test_degenerate_points_are_refused_naming_the_key(points):
    with pytest.raises(ConfigError) as e:
        parse_text(_toml(points))
    assert any("camera.floor" in p and "collinear" in p for p in e.value.problems)


def test_either_points_or_homography_and_distortion_round_trips():
    with pytest.raises(ConfigError, match="either points or homography"):
        parse_text("[camera.floor]\nmax_error_m = 0.3\n")
    h = "homography = [[8.0, 1.0, -1.0], [0.5, 12.0, -2.0], [0.1, 0.9, 1.0]]\n"
    cfg = parse_text("[camera.floor]\n" + h + "distortion = [-0.2, 0.02]\n").camera.floor
    fm = floor_map(cfg)
    uv = np.array([[0.15, 0.2], [0.5, 0.5], [0.85, 0.9]])
    d = 2 * (uv - 0.5)
    r2 = (d**2).sum(1, keepdims=True)
    distorted = d * (1 - 0.2 * r2 + 0.02 * r2**2) / 2 + 0.5
    np.testing.assert_allclose(fm.undistort(distorted), uv, atol=1e-4)


def test_floor_motion_gives_metres_per_second():
    fm = FloorMap(np.diag([10.0, 10.0, 1.0]))  # 10 m across the image
    motion = FloorMotion(fm, smoothing=0.0)
    for k in range(5):
        x = 0.1 + 0.02 * k  # 0.2 m per 0.2 s = 1 m/s
        pos, vel = motion.update(np.array([4]), np.array([[x - 0.01, 0.2, x + 0.01, 0.6]]), 0.2 * k)
    np.testing.assert_allclose(pos[0], [10 * x, 6.0])
    np.testing.assert_allclose(vel[0], [1.0, 0.0], atol=1e-9)
