"""`vigil-diag selftest` and `snapshot` against a unit replaying a real clip, over the serial console
(pty cable), with real LiteRT, gpiozero MockFactory pins and a real Mosquitto broker."""

from __future__ import annotations

import json
import os
import shutil
import threading

import cv2
import numpy as np
import pytest

from firmware.config import validate
from firmware.console import ConsoleServer
from firmware.detect.config import DetectorConfig
from firmware.deter import DeterrentController
from firmware.diag import Diagnostics, UnitProbe, run_selftest
from firmware.paths import MODELS_DIR, REPO_ROOT
from firmware.types import Detections, Frame, Tracks
from tests.test_console import NullModem
from tools.diag.cli import main as vigil_diag

CLIP = REPO_ROOT / "firmware" / "demo" / "vtest-30s.mp4"


def unit_cfg(tmp_path, broker_url: str):
    return validate(
        {
            "site": {"site_id": "shop-1", "unit_id": "cam-7", "board": "pi4"},
            "storage": {"data_dir": str(tmp_path)},
            "link": {"mqtt": broker_url},
            "zones": [
                {
                    "name": "display",
                    "purpose": "high_value",
                    "polygon": [[0.25, 0.3], [0.5, 0.3], [0.5, 0.62], [0.25, 0.62]],
                }
            ],
            "deterrents": {
                "light": {"kind": "light", "pin": 17, "feedback_pin": 27},
                "relay": {
                    "kind": "relay",
                    "pin": 22,
                    "feedback_pin": 23,
                },  # feedback never follows: stuck
                "buzz": {"kind": "buzzer", "pin": 24},
            },
        }
    )


class ReplayUnit:
    """The unit's stages on the bundled clip: real source, detector, tracker; feeds a probe."""

    def __init__(self, cfg, probe: UnitProbe) -> None:
        from firmware.detect import load_detector
        from firmware.sources import FrameReader, open_source_factory
        from firmware.track import Tracker

        self.reader = FrameReader(open_source_factory(str(CLIP), cfg.camera), paced=True, loop=True)
        self.detector = load_detector(cfg.detector)
        self.reader.start()
        self.tracker = Tracker(cfg.tracker, fps=self.reader.fps)
        self.probe = probe
        self.events: list = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self.reader.next(timeout=0.5)
            if frame is None:
                continue
            dets = self.detector.detect(frame.image)
            tracks = self.tracker.update(dets, frame.timestamp, image=frame.image)
            self.probe.frame(frame, dets, tracks, dict(self.detector.last_timings))
            if self.probe.deterrents is not None:
                self.events += self.probe.deterrents.tick(frame.timestamp)

    def __enter__(self) -> ReplayUnit:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(timeout=10)
        self.reader.stop()


@pytest.fixture
def feedback_pins(mock_pins):
    """GPIO17 wired back to GPIO27 (a working light); GPIO23 left unwired (relay stuck)."""
    from gpiozero.pins.mock import MockConnectedPin

    mock_pins.pin("GPIO17", pin_class=MockConnectedPin, input_pin=mock_pins.pin("GPIO27"))
    return mock_pins


class console_key:  # noqa: N801 (a small record, used like a function)
    """A provisioned console key: the console's ConsoleAuth and vigil-diag's arguments."""

    def __init__(self, tmp_path) -> None:
        from firmware.console.auth import ConsoleAuth, load_console_key

        path = tmp_path / "console.key"
        path.write_text(os.urandom(32).hex())
        self.auth = ConsoleAuth(load_console_key(path))
        self.arg = ["--console-key", str(path)]


def models_without_files(tmp_path):
    """A models folder whose manifest names the model but whose file is gone."""
    d = tmp_path / "models"
    d.mkdir()
    shutil.copy(MODELS_DIR / "manifest.toml", d / "manifest.toml")
    return d


def test_selftest_over_serial_reports_every_check_and_the_broken_ones(
    tmp_path, broker, feedback_pins, capsys
):
    from firmware.detect import load_detector

    cfg = unit_cfg(tmp_path, broker.url)
    bare = models_without_files(tmp_path)
    with DeterrentController(cfg) as ctrl:
        probe = UnitProbe(
            cfg,
            deterrents=ctrl,
            detector_factory=lambda: load_detector(cfg.detector, models_dir=bare),
        )
        cable = NullModem()
        key = console_key(tmp_path)
        server = ConsoleServer(cable.a, Diagnostics(probe).handle, auth=key.auth).start()
        try:
            with ReplayUnit(cfg, probe) as unit:  # pulsing outputs needs the console key
                code = vigil_diag(["--serial", cable.b, *key.arg, "--json", "selftest"])
                report = json.loads(capsys.readouterr().out)
                human_code = vigil_diag(["--serial", cable.b, "selftest", "--no-outputs"])
                human = capsys.readouterr()
        finally:
            server.stop()
            cable.close()
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == [
        "frames", "model", "edgetpu", "output:light", "output:relay", "speaker:buzz", "storage", "clock", "broker",
    ]  # fmt: skip
    assert code == 1 and report["ok"] is False
    assert checks["frames"]["ok"] and checks["frames"]["value"] > 0
    assert not checks["model"]["ok"] and "manifest" in checks["model"]["hint"]
    assert DetectorConfig().model in checks["model"]["detail"]
    assert checks["output:light"]["ok"] and "feedback input" in checks["output:light"]["detail"]
    relay = checks["output:relay"]
    assert not relay["ok"] and "stuck off" in relay["detail"] and "wiring of relay" in relay["hint"]
    assert checks["speaker:buzz"]["ok"]
    assert checks["storage"]["ok"] and "writable" in checks["storage"]["detail"]
    assert checks["broker"]["ok"] and f"127.0.0.1:{broker.port}" in checks["broker"]["detail"]
    assert checks["edgetpu"]["ok"] and "not configured" in checks["edgetpu"]["detail"]
    for c in report["checks"]:
        assert c["ok"] or c["hint"], c  # every failure says how to fix it
    # people get a table, a "to fix" list and progress on stderr
    assert human_code == 1
    assert "FAIL    model" in human.out and "PASS    frames" in human.out
    assert "to fix:" in human.out and "passed" in human.out
    assert "[1/7] frames..." in human.err
    # the self-test pulses were recorded as deterrent events
    recs = [e for e in unit.events + ctrl.tick(1e9) if e.explain["action"] == "selftest"]
    assert {e.explain["output"] for e in recs} == {"light", "relay", "buzz"}


def test_selftest_passes_model_and_fails_broker_when_down(tmp_path, mock_pins):
    cfg = unit_cfg(tmp_path, "mqtt://127.0.0.1:1")
    probe = UnitProbe(cfg)
    with ReplayUnit(cfg, probe):
        checks = {c["name"]: c for c in run_selftest(probe, toggle_outputs=False)}
    assert checks["model"]["ok"] and checks["model"]["value"] > 0
    assert f"{DetectorConfig().model} on" in checks["model"]["detail"]
    assert not checks["broker"]["ok"] and "outbox" in checks["broker"]["hint"]
    assert checks["outputs"]["ok"] and "not toggled" in checks["outputs"]["detail"]


def test_storage_check_fails_for_a_missing_or_full_dir(tmp_path):
    from firmware.diag.checks import check_storage

    cfg = validate({"storage": {"data_dir": str(tmp_path / "nope")}, "link": {"mqtt": ""}})
    r = check_storage(UnitProbe(cfg))
    assert not r["ok"] and "does not exist" in r["detail"] and "tmpfiles" in r["hint"]


def person_scene():
    """A textured background with one 'person' (a patterned block) at a known box."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    box = np.array([[300, 100, 360, 260]], np.float32)
    img[100:260, 300:360] = (20, 200, 240)
    dets = Detections(box.copy(), np.array([0.9], np.float32), np.array([1], np.int16))
    tracks = Tracks(
        np.array([7], np.int64),
        box.copy(),
        np.array([0.9], np.float32),
        np.array([1], np.int16),
        np.array([1], np.int8),
        np.zeros((1, 2), np.float32),
        np.array([True]),
    )
    return Frame(42, 4.2, img), dets, tracks


def stored(cfg, frame, dets, tracks, ok: bool = True):
    """The anonymised frame the loop's privacy stage makes of ``frame`` (what a probe keeps)."""
    from firmware.privacy import Anonymiser

    return Anonymiser(cfg.privacy).apply(frame.image, dets, tracks, inference_ok=ok)


def test_snapshot_png_has_zones_and_tracks_drawn_and_people_masked(tmp_path, capsys):
    cfg = validate(
        {
            "storage": {"data_dir": str(tmp_path)},
            "link": {"mqtt": ""},
            "zones": [
                {
                    "name": "display",
                    "purpose": "high_value",
                    "polygon": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.9], [0.1, 0.9]],
                }
            ],
        }
    )
    probe = UnitProbe(cfg)
    frame, dets, tracks = person_scene()
    original = frame.image.copy()
    probe.frame(frame, dets, tracks, stored=stored(cfg, frame, dets, tracks))
    cable = NullModem()
    key = console_key(tmp_path)
    server = ConsoleServer(cable.a, Diagnostics(probe).handle, auth=key.auth).start()
    out = tmp_path / "aim.png"
    try:  # a snapshot needs the console key (tests/test_console_auth.py)
        code = vigil_diag(["--serial", cable.b, *key.arg, "snapshot", "-o", str(out)])
    finally:
        server.stop()
        cable.close()
    assert code == 0
    said = capsys.readouterr().out
    assert f"wrote {out}" in said and "1 track(s)" in said and "privacy.Anonymiser" in said
    png = cv2.imread(str(out))
    assert png.shape == original.shape
    inner = png[130:230, 305:355].astype(int)  # inside the person, away from the drawn box
    assert np.abs(inner - original[130:230, 305:355]).mean() > 60  # the person's pixels are gone
    assert inner.std() < 5  # replaced by a flat fill
    assert np.all(png[180, 64] == (0, 170, 255))  # the high-value zone's left edge (x = 0.1 * 640)
    track_box = png[96:104, 300:360]
    assert ((track_box[..., 1] == 255) & (track_box[..., 0] == 0)).any()  # the green track box
    untouched = np.abs(png[300:340, 500:600].astype(int) - original[300:340, 500:600]).mean()
    assert untouched < 1  # the rest of the scene is as it was


def test_snapshot_is_blanked_without_an_inference_result(tmp_path):
    from firmware.diag.snapshot import render

    cfg = validate({"link": {"mqtt": ""}})
    probe = UnitProbe(cfg)
    frame, _, _ = person_scene()
    probe.frame(
        frame, None, None, inference_ok=False, stored=stored(cfg, frame, None, None, ok=False)
    )
    img, info = render(cfg, probe.last_frame())
    assert np.abs(img[100:260, 300:360].astype(int) - frame.image[100:260, 300:360]).mean() > 60
    assert info["tracks"] == 0


def test_status_zones_logs_bench_and_mute_handlers(tmp_path, mock_pins):
    import logging

    cfg = unit_cfg(tmp_path, "")
    with DeterrentController(cfg) as ctrl:
        probe = UnitProbe(cfg, deterrents=ctrl)
        probe.install_log_handler()
        try:
            diag = Diagnostics(probe)
            frame, dets, tracks = person_scene()
            tracks.boxes[:] = [
                [200, 150, 260, 200]
            ]  # foot point (230, 200) -> (0.36, 0.56): in the zone
            probe.frame(frame, dets, tracks, {"inference": 40.0})
            logging.getLogger("vigil.test").warning("camera hiccup")
            st = diag.handle("status")
            assert st["unit"] == "cam-7" and st["frames"] == 1 and st["people"] == 1
            assert st["deterrents"]["outputs"]["light"]["pin"] == 17 and st["board"] == "pi4"
            zones = diag.handle("zones")
            assert zones["zones"][0]["people"] == 1
            logs = diag.handle("logs", {"lines": 5, "level": "warning"})
            assert logs["lines"][-1]["message"] == "camera hiccup"
            assert diag.handle("mute", {"minutes": 5})["muted"] is True
            assert [e.explain["action"] for e in ctrl.tick(1.0)] == ["muted"]
            bench = diag.handle("bench", {"runs": 2})
            assert bench["runs"] == 2 and bench["inference_ms"]["mean"] > 0
            with pytest.raises(Exception, match="runs must be 1..500"):
                diag.handle("bench", {"runs": 0})
        finally:
            probe.remove_log_handler()


def test_human_output_of_other_result_shapes():
    from tools.diag.render import human

    # the link's own `diagnostics` reply (firmware/control.py) has no unit/frames keys
    text = human("status", {"metrics": {"fps": 3.2}, "model": {"name": "nanodet"}, "tracks": 2})
    assert "metrics:\n  fps  3.2\n" in text and "tracks" in text
    assert human("test_output", {"tested": ["light"], "seconds": 1.0}).startswith("tested")
    table = human(
        "selftest",
        {"checks": [{"name": "clock", "ok": False, "detail": "unsynchronised", "hint": "ntp"}]},
    )
    assert "FAIL    clock" in table and "clock: ntp" in table and "0 passed, 1 failed" in table


def test_network_handler_never_serves_images(tmp_path):
    from firmware.diag import DiagError

    cfg = validate({"link": {"mqtt": ""}, "storage": {"data_dir": str(tmp_path)}})
    probe = UnitProbe(cfg)
    frame, dets, tracks = person_scene()
    probe.frame(frame, dets, tracks, stored=stored(cfg, frame, dets, tracks))
    diag = Diagnostics(probe)
    assert "png" in diag.handle("snapshot")
    with pytest.raises(DiagError, match="only served over the serial console"):
        diag.handle_network("snapshot")
    assert diag.handle_network()["frames"] == 1
