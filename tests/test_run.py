"""The whole unit, end to end: `vigil run` on real clips with the real model, a real broker,
gpiozero mock pins. Bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
import pytest

from firmware.commands.run import DEMO_CONFIG
from firmware.config import load
from firmware.detect.config import DetectorConfig
from firmware.paths import MODELS_DIR
from firmware.unit import RunOptions, apply_overrides, build_unit

DEMO_CLIP = DEMO_CONFIG.parent / "vtest-30s.mp4"


def run_cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "firmware.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def demo_site(tmp_path: Path, extra: str = "", threshold_s: float = 5.0) -> Path:
    """The demo site with its clip by absolute path, a private data folder and ``extra`` TOML."""
    text = DEMO_CONFIG.read_text()
    text = text.replace('source = "vtest-30s.mp4"', f'source = "{DEMO_CLIP}"')
    text = text.replace('data_dir = "~/.cache/vigil-demo"', f'data_dir = "{tmp_path / "data"}"')
    text = text.replace("threshold_s = 5.0", f"threshold_s = {threshold_s}")
    site = tmp_path / "site.toml"
    site.write_text(text + "\n" + extra)
    return site


def test_fast_replay_reads_every_frame_and_prints_a_summary(tmp_path):
    events_out = tmp_path / "ev.jsonl"
    r = run_cli(
        [
            "run",
            "-c",
            str(demo_site(tmp_path)),
            "--fast",
            "--quiet",
            "--events-out",
            str(events_out),
        ]
    )
    assert r.returncode == 0, r.stderr
    assert "frames 300" in r.stdout
    for stage in ("capture", "preprocess", "inference", "tracking", "rules", "publish"):
        assert stage in r.stdout
    assert "fps" in r.stdout
    events = [json.loads(line) for line in events_out.read_text().splitlines()]
    loiter = [e for e in events if e["type"] == "loitering" and e["phase"] == "start"]
    assert loiter, "someone lingers on the path in the demo clip for more than 5 s"
    assert loiter[0]["explain"]["threshold_s"] == 5.0
    assert loiter[0]["explain"]["dwell_s"] >= 5.0
    assert all({"type", "phase", "event_id", "track_ids", "explain", "v"} <= set(e) for e in events)


def test_status_line_every_second_when_paced(tmp_path):
    r = run_cli(["run", "-c", str(demo_site(tmp_path)), "--max-frames", "25"])
    assert r.returncode == 0, r.stderr
    status = [ln for ln in r.stdout.splitlines() if ln.startswith("[") and "fps" in ln]
    assert 1 <= len(status) <= 4  # 25 frames at the clip's 10 fps: about 2.5 s, one line a second
    assert "people" in status[0] and "tracks" in status[0] and "events" in status[0]


@pytest.mark.data
def test_caviar_shop_clip_end_to_end(eval_data, tmp_path):
    clip = eval_data / "caviar/lisbon/videos/TwoLeaveShop2front.mpg"
    if not clip.exists():
        pytest.skip(f"{clip} absent")
    events_out = tmp_path / "ev.jsonl"
    r = run_cli(
        [
            "run",
            "--source",
            str(clip),
            "--fast",
            "--quiet",
            "--events-out",
            str(events_out),
            "--data-dir",
            str(tmp_path / "data"),
            "--max-frames",
            "200",
        ]
    )
    assert r.returncode == 0, r.stderr
    assert "frames 200" in r.stdout
    assert "inference" in r.stdout


def test_preview_is_written_with_people_masked(tmp_path):
    import cv2

    preview = tmp_path / "preview.mp4"
    r = run_cli(
        [
            "run",
            "-c",
            str(demo_site(tmp_path)),
            "--fast",
            "--quiet",
            "--max-frames",
            "40",
            "--preview",
            str(preview),
        ]
    )
    assert r.returncode == 0, r.stderr
    cap = cv2.VideoCapture(str(preview))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 40


# -- bad input: one line that says what is wrong, non-zero exit ---------------------------------


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("vigil: error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_missing_model_is_refused_clearly(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    for f in models.glob("*.tflite"):
        f.unlink()
    line = one_error_line(
        run_cli(["run", "-c", str(demo_site(tmp_path)), "--models-dir", str(models)])
    )
    assert ".tflite" in line and "missing" in line


def test_corrupt_model_is_refused_clearly(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    target = models / f"{DetectorConfig().model}.tflite"  # the model the unit loads
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    line = one_error_line(
        run_cli(["run", "-c", str(demo_site(tmp_path)), "--models-dir", str(models)])
    )
    assert "sha256" in line


def test_unreadable_clip_is_refused_clearly(tmp_path):
    clip = tmp_path / "clip.mpg"
    clip.write_bytes(b"\x00\x01 not a video" * 1000)
    line = one_error_line(run_cli(["run", "-c", str(demo_site(tmp_path)), "--source", str(clip)]))
    assert "clip.mpg" in line and "cannot decode" in line


def test_invalid_config_is_refused_with_every_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[zones]]\nname = "a"\npolygon = [[0, 0], [1, 1]]\n[rules.teleport]\n')
    r = run_cli(["run", "-c", str(bad)])
    assert r.returncode == 2
    assert "zones[0].polygon" in r.stderr and "rules.teleport" in r.stderr


# -- the hub link: a real Mosquitto broker --------------------------------------------------------


class Subscriber:
    """A separate MQTT client that collects what the unit publishes under vigil/#."""

    def __init__(self, port: int, persistent: bool = False):
        self.messages: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="test-hub", clean_session=not persistent
        )
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.port = port
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()

    def start(self) -> Subscriber:
        self.client.connect("127.0.0.1", self.port)
        self.client.subscribe("vigil/#", qos=1)
        self.client.loop_start()
        assert self.subscribed.wait(5)
        return self

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def events(self) -> list[dict]:
        return [cbor2.loads(p) for t, p in self.messages if t.endswith("/events")]


def test_events_reach_a_real_broker_as_cbor(broker, tmp_path):
    sub = Subscriber(broker.port).start()
    try:
        r = run_cli(
            [
                "run",
                "-c",
                str(demo_site(tmp_path)),
                "--fast",
                "--quiet",
                "--max-frames",
                "120",
                "--mqtt",
                broker.url,
            ]
        )
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            e["type"] == "loitering" for e in sub.events()
        ):
            time.sleep(0.1)
    finally:
        sub.stop()
    events = sub.events()
    assert any(e["type"] == "loitering" for e in events)
    assert all(e["unit"] == "demo-unit" and e["site"] == "demo-store" for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    status = [p for t, p in sub.messages if t == "vigil/demo-store/demo-unit/status"]
    assert status, "the unit publishes its status"


def test_unreachable_broker_at_start_keeps_running_and_delivers_later(tmp_path):
    from tests.support.broker import MosquittoBroker

    # The hub keeps a persistent session (as a production hub does), so what the unit sends
    # while the hub is still reconnecting is queued for it by the broker.
    b = MosquittoBroker(persistence=True)
    b.start()
    hub = Subscriber(b.port, persistent=True).start()
    hub.stop()
    b.stop()  # the broker is down when the unit starts
    loaded = apply_overrides(load(demo_site(tmp_path)), RunOptions(mqtt=b.url))
    unit = build_unit(loaded, RunOptions(fast=True, max_frames=80, watchdog=False))
    unit.link.start()
    try:
        result = unit.loop.run()
        assert result.frames == 80  # the unit kept going without a broker
        produced = unit.link.outbox.depth()
        assert produced > 0  # and kept its events
        b.start()
        hub = Subscriber(b.port, persistent=True).start()
        try:
            deadline = time.monotonic() + 60
            # the hub can hold every event a moment before the unit has its PUBACKs
            while time.monotonic() < deadline and (
                len(hub.events()) < produced or unit.link.outbox.depth() > 0
            ):
                time.sleep(0.1)
        finally:
            hub.stop()
        assert unit.link.outbox.depth() == 0
        events = hub.events()
        assert len(events) == produced
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        assert any(e["type"] == "loitering" for e in events)
    finally:
        unit.link.stop(clean=True)
        b.__exit__()


# -- deterrent: a gpiozero output on a mock pin ---------------------------------------------------


def test_loitering_switches_the_output_on_then_off_after_on_s(tmp_path, mock_pins):
    """The demo zone: someone lingers 5 s on the path -> GPIO17 high for on_s (3 s) -> low."""
    loaded = apply_overrides(load(demo_site(tmp_path)), RunOptions(mqtt="none"))
    opts = RunOptions(fast=True, max_frames=120, pin_factory=mock_pins, watchdog=False)
    unit = build_unit(loaded, opts)
    pin = mock_pins.pin(17)
    states: list[tuple[float, bool]] = []  # (source time, pin level) after every frame

    class Recorder:
        events: list = []

        def emit(self, event):
            self.events.append(event)

        def close(self):
            pass

    rec = Recorder()
    unit.loop.s.sinks.append(rec)
    original = unit.loop.emit

    def emit(events):
        original(events)
        states.append((unit.loop.now(), bool(pin.state)))

    unit.loop.emit = emit
    unit.run()
    starts = [e for e in rec.events if e.type == "loitering" and e.phase.value == "start"]
    assert starts, "loitering fired"
    t_fire = starts[0].time
    assert starts[0].explain["dwell_s"] >= 5.0
    on = [e for e in rec.events if e.type == "deterrent" and e.explain.get("action") == "on"]
    off = [e for e in rec.events if e.type == "deterrent" and e.explain.get("action") == "off"]
    assert on and off
    assert on[0].time == pytest.approx(t_fire, abs=0.2)
    assert off[0].time - on[0].time == pytest.approx(3.0, abs=0.25)
    assert off[0].explain["reason"] == "on_s elapsed"
    # the pin itself: low before the rule fired, high for on_s, then low again
    assert not any(level for t, level in states if t < t_fire - 1e-6)
    high = [t for t, level in states if level]
    assert high and min(high) == pytest.approx(t_fire, abs=0.2)
    assert max(high) - min(high) == pytest.approx(3.0, abs=0.3)
    assert not pin.state
    assert [bool(s.state) for s in pin.states][-3:] == [False, True, False]
