"""Store-level rules on a real Mosquitto: two units publish replayed tracks, the hub's
FuseService fuses them and its rules fire on global ids (grab-and-run with the dwell seen by
one camera and the dash by the other; return visits within a window), and the store file's
rule settings are refused with the key named."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from firmware.link.tracks import encode_tracks
from tools.hub.client import HubClient
from tools.hub.serve.config import load_store
from tools.hub.store import FuseService
from tools.hub.store_rules import (
    GrabAndRunConfig,
    ReturnVisitConfig,
    StoreGrabAndRun,
    StoreReturnVisit,
    StoreRulesConfig,
    StoreZone,
    StoreZoneConfig,
    build_rules,
)

HZ = 5.0
T0 = 1_700_000_000.0
# the floor: a high-value shelf at x 0..3 m seen by camera a (x < 6.5 m), the door at
# x 11..13 m seen by camera b (x > 5.5 m); both see the 1 m between
SHELF = StoreZone("jewellery", [(0.0, -1.5), (3.0, -1.5), (3.0, 1.5), (0.0, 1.5)], "high_value")
DOOR = StoreZone("door", [(11.0, -1.5), (13.0, -1.5), (13.0, 1.5), (11.0, 1.5)], "exit")
VIEWS = {"a": (-10.0, 6.5), "b": (5.5, 20.0)}

Path_ = Callable[[float], "tuple[float, float] | None"]  # seconds -> floor position or absent


def _client(broker) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def replay(
    broker, svc: FuseService | None, people: list[Path_], seconds: float, seed: int = 0
) -> None:
    """Publish the units' tracks of ``people`` at 5 Hz (b's clock 0.3 s ahead, 0.1 m noise);
    a unit gives a person a new local id each time they come into its view. ``svc`` is
    ticked every other frame (None: it ticks by itself, as in ``vigil-hub serve``)."""
    rng = np.random.default_rng(seed)
    units = {u: _client(broker) for u in VIEWS}
    time.sleep(0.3)
    next_id = {u: 1 for u in VIEWS}
    lid: dict[tuple[str, int], int | None] = {}
    for k in range(int(seconds * HZ)):
        s = k / HZ
        for u, (lo, hi) in VIEWS.items():
            ids, xy = [], []
            for p, path in enumerate(people):
                pos = path(s)
                if pos is None or not lo <= pos[0] <= hi:
                    lid[(u, p)] = None
                    continue
                if lid.get((u, p)) is None:
                    lid[(u, p)], next_id[u] = next_id[u], next_id[u] + 1
                ids.append(lid[(u, p)])
                xy.append([pos[0] + rng.normal(0, 0.1), pos[1] + rng.normal(0, 0.1)])
            n = len(ids)
            floor = np.array(xy, np.float64).reshape(-1, 2)
            payload = encode_tracks(
                time_s=T0 + s + (0.3 if u == "b" else 0.0),
                frame=k + 1,
                session=1,
                ids=np.array(ids, np.int64),
                boxes=np.tile([0.4, 0.2, 0.5, 0.8], (n, 1)),
                states=["confirmed"] * n,
                floor_xy=floor,
                floor_v=np.zeros_like(floor),
            )
            units[u].publish(f"vigil/s1/{u}/tracks", payload, qos=0)
        time.sleep(0.01 if svc is not None else 1 / HZ)  # the hub ticks on its own: real time
        if svc is not None and k % 2:
            svc.tick()
    time.sleep(0.5)
    if svc is not None:
        svc.tick()
    for c in units.values():
        c.loop_stop()
        c.disconnect()


def walk(*legs: tuple[float, float, float]) -> Path_:
    """Piecewise-linear walk through (time s, x m, y m) waypoints; absent outside them."""
    ts = np.array([leg[0] for leg in legs])
    xs, ys = np.array([leg[1] for leg in legs]), np.array([leg[2] for leg in legs])

    def at(s: float):
        if s < ts[0] or s > ts[-1]:
            return None
        return float(np.interp(s, ts, xs)), float(np.interp(s, ts, ys))

    return at


def run_rules(broker, rules, people, seconds, seed=0):
    """Replay ``people`` through a FuseService with ``rules``; the hub's store events."""
    svc = FuseService(broker.url, "s1", rules=rules).start()
    with HubClient(broker.url, site="s1") as hub:
        replay(broker, svc, people, seconds, seed)
        time.sleep(0.5)
        events = hub.of("events", "store")
        tracks = hub.of("tracks", "store")
    svc.stop()
    assert svc.rejected == 0 and tracks
    assert all(m.problems == [] for m in events + tracks)  # the CDDL contract, old and new
    return [m.message for m in events]


def test_grab_and_run_dwell_on_one_camera_dash_on_the_other_fires_with_explain(broker):
    # 6 s at the shelf (camera a only), then a 2.5 m/s dash to the door (camera b)
    thief = walk((0, 1.5, 0.0), (6, 1.5, 0.3), (10, 11.5, 0.0), (11, 12.5, 0.0))
    rules = [StoreGrabAndRun([SHELF, DOOR])]
    (e,) = run_rules(broker, rules, [thief], 11.5)
    assert e["type"] == "grab_and_run" and e["rule"] == "store_grab_and_run"
    assert e["unit"] == "store" and e["zone"] == "jewellery" and e["phase"] == "instant"
    assert e["severity_name"] == "alert"
    x = e["explain"]
    assert x["dwell_units"] == ["a"] and "b" in x["exit_units"]
    assert x["dwell_s"] >= x["min_dwell_s"] == 3.0
    assert x["speed_mps"] >= x["min_speed_mps"] == 2.0 and x["speed_mps"] < 3.5
    assert x["exit"] == "door" and x["seconds_since_zone"] <= x["window_s"]
    assert x["in_exit_zone"] or x["towards_exit_cos"] >= x["towards_cos"]
    assert e["track_ids"] == [x["global_id"]]
    (f,) = e["floor"]
    assert f["id"] == x["global_id"] and f["floor"][0] > 6.5  # on b's side of the store


def test_walking_out_or_dashing_without_a_dwell_does_not_fire(broker):
    # a shopper dwells at the shelf, then walks (1.2 m/s) to the door; another, 2 m aside,
    # who never stood at the shelf, dashes (2.5 m/s) from the middle of the store to the door
    # while the first is still at the shelf: neither is a grab-and-run and they are not mixed up
    shopper = walk((0, 1.5, -1.0), (6, 1.5, -1.0), (14.5, 11.7, -1.0))
    runner = walk((2, 6.0, 2.0), (4, 11.0, 1.0), (5, 12.0, 1.0))
    rules = [StoreGrabAndRun([SHELF, DOOR])]
    assert run_rules(broker, rules, [shopper, runner], 15.0, seed=1) == []
    # the same dash with the runner at the shelf first fires: the rule can fire here
    dash = walk((0, 1.5, 1.0), (6, 1.5, 1.0), (10, 11.5, 1.0), (11, 12.5, 1.0))
    (e,) = run_rules(broker, [StoreGrabAndRun([SHELF, DOOR])], [shopper, dash], 11.5, seed=1)
    assert e["type"] == "grab_and_run" and e["floor"][0]["floor"][1] > 0  # the runner's lane


def test_grab_and_run_seen_by_one_camera_only_is_left_to_the_unit(broker):
    # shelf and a second exit both inside camera a's view: the unit's own rule covers it
    side_door = StoreZone("side-door", [(4.0, 3.0), (5.0, 3.0), (5.0, 4.0), (4.0, 4.0)], "exit")
    thief = walk((0, 1.5, 0.0), (6, 1.5, 0.0), (7.5, 4.5, 3.5), (8.0, 4.5, 3.6))
    assert run_rules(broker, [StoreGrabAndRun([SHELF, side_door])], [thief], 8.5) == []
    cfg = GrabAndRunConfig(other_camera=False)
    (e,) = run_rules(broker, [StoreGrabAndRun([SHELF, side_door], cfg)], [thief], 8.5)
    assert e["explain"]["exit"] == "side-door" and e["explain"]["exit_units"] == ["a"]


def _visits(away_s: float) -> Path_:
    """3 s at the shelf, walk out to x 9 m (camera b), ``away_s`` after leaving back for 4 s."""
    back = 4.0 + away_s
    return walk(
        (0, 1.5, 0.0),
        (3, 1.5, 0.0),
        (4, 3.5, 0.0),  # leaves the shelf at ~3.75 s
        (8, 9.0, 0.0),
        (back - 4, 9.0, 0.0),
        (back, 2.5, 0.0),
        (back + 4, 1.5, 0.0),
    )


def test_return_within_the_window_fires_and_after_it_does_not(broker):
    cfg = ReturnVisitConfig(window_s=25.0, min_away_s=5.0, min_dwell_s=2.0)
    (e,) = run_rules(broker, [StoreReturnVisit([SHELF], cfg)], [_visits(15.0)], 24.0)
    assert e["type"] == "return_visit" and e["zone"] == "jewellery" and e["unit"] == "store"
    x = e["explain"]
    assert 12.0 <= x["away_s"] <= x["window_s"] == 25.0 and x["away_s"] >= x["min_away_s"]
    assert x["first_visit_s"] >= 2.0 and x["dwell_s"] >= x["min_dwell_s"]
    assert x["first_units"] == ["a"] and e["track_ids"] == [x["global_id"]]
    # the same walk with 35 s away (past the 25 s window) does not fire
    assert run_rules(broker, [StoreReturnVisit([SHELF], cfg)], [_visits(35.0)], 44.0) == []


def test_return_visit_does_not_confuse_two_people(broker):
    # one shopper visits the shelf and leaves to x 9 m; a second, who was never there, comes
    # to the shelf 12 s later: two first visits, no return
    first = walk((0, 1.5, 0.0), (3, 1.5, 0.0), (8, 9.0, 0.0), (30, 9.0, 0.0))
    second = walk((0, 16.0, 2.0), (10, 9.0, 3.0), (14, 2.0, 1.0), (20, 1.5, 0.5))
    cfg = ReturnVisitConfig(window_s=60.0, min_away_s=5.0)
    assert run_rules(broker, [StoreReturnVisit([SHELF], cfg)], [first, second], 22.0) == []


def test_store_file_rules_defaults_bounds_and_errors(tmp_path):
    ok = tmp_path / "store.toml"
    ok.write_text(
        '[[zones]]\nname = "jewellery"\npurpose = "high_value"\n'
        "polygon = [[0, -1.5], [3, -1.5], [3, 1.5], [0, 1.5]]\n"
        '[[zones]]\nname = "door"\npurpose = "exit"\npolygon = [[11, -1], [13, -1], [13, 1]]\n'
        "[rules.return_visit]\nwindow_s = 120\n[rules.loitering]\nenabled = false\n"
    )
    cfg = load_store(ok)
    assert cfg.rules.return_visit.window_s == 120 and cfg.rules.grab_and_run.min_speed_mps == 2.0
    rules = build_rules(cfg.zones, cfg.rules)
    assert [type(r).__name__ for r in rules] == ["StoreGrabAndRun", "StoreReturnVisit"]
    assert [z.name for z in rules[0].cols] == ["jewellery"]
    assert [z.name for z in rules[0].exits] == ["door"]
    cases = {
        "[rules.grab_and_run]\nexits = ['gate']\n": "rules.grab_and_run.exits: unknown zone 'gate'",
        "[rules.return_visit]\nwindow_s = 0\n": "rules.return_visit.window_s",
        "[rules.grab_and_run]\nmin_speed_mps = 50\n": "rules.grab_and_run.min_speed_mps",
        "[rules.return_visit]\nwindw_s = 3\n": "rules.return_visit.windw_s",
        "[[zones]]\nname = 'x'\npolygon = [[0, 0], [1, 1], [2, 2]]\n": "zones.0.polygon",
        "[[zones]]\nname = 'x'\npolygon = [[0, 0], [1, 0], [1, 1]]\n"
        "[[zones]]\nname = 'x'\npolygon = [[0, 0], [1, 0], [1, 1]]\n": "duplicate name(s) x",
    }
    for text, key in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ValueError, match=re.escape(f"{bad}: ") + ".*" + re.escape(key)):
            load_store(bad)


def test_rules_config_defaults_are_documented():
    text = Path(__file__).resolve().parents[1].joinpath("docs", "store.md").read_text()
    for name, rule in StoreRulesConfig().model_dump().items():
        assert f"[rules.{name}]" in text
        for key in rule:
            assert f"`{key}`" in text or f"{key} =" in text, (name, key)
    assert "[[zones]]" in text and all(f in text for f in StoreZoneConfig.model_fields)


def test_hub_serve_site_runs_the_store_files_rules_and_opens_an_alert(tmp_path, broker):
    from tools.hub.serve import config
    from tools.hub.serve.service import Hub

    store = tmp_path / "store.toml"
    store.write_text(
        '[[zones]]\nname = "jewellery"\npurpose = "high_value"\n'
        "polygon = [[0, -1.5], [3, -1.5], [3, 1.5], [0, 1.5]]\n"
        '[[zones]]\nname = "door"\npurpose = "exit"\n'
        "polygon = [[11, -1.5], [13, -1.5], [13, 1.5], [11, 1.5]]\n"
        "[rules.return_visit]\nwindow_s = 42\n[rules.loitering]\nenabled = false\n"
    )
    cfg = config.build(db=tmp_path / "hub.sqlite", store=str(store), site="s1", mqtt=broker.url)
    hub = Hub(cfg).start()
    try:
        rules = {type(r).__name__: r for r in hub.fusion.rules}
        assert sorted(rules) == ["StoreGrabAndRun", "StoreReturnVisit"]
        assert rules["StoreReturnVisit"].cfg.window_s == 42
        assert [z.name for z in rules["StoreGrabAndRun"].exits] == ["door"]
        thief = walk((0, 1.5, 0.0), (6, 1.5, 0.3), (10, 11.5, 0.0), (11, 12.5, 0.0))
        replay(broker, None, [thief], 11.5)
        deadline, rows = time.monotonic() + 15, []
        while not rows and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = (
                hub.db.read()
                .execute("SELECT unit, type, zone, state, explain FROM alerts")
                .fetchall()
            )
        ((unit, typ, zone, state, explain),) = rows
        assert (unit, typ, zone, state) == ("store", "grab_and_run", "jewellery", "open")
        assert '"dwell_units"' in explain
    finally:
        hub.stop()
