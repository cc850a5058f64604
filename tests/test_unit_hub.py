"""A real unit replaying the demo clip, driven by the hub over a real Mosquitto broker:
signed commands reach the running frame loop, `vigil-diag --mqtt selftest` sees its frames."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from firmware.config import load
from firmware.link.signing import Signer
from firmware.unit import RunOptions, apply_overrides, build_unit
from tests.test_run import demo_site
from tools.diag.cli import main as vigil_diag
from tools.hub.client import HubClient


@pytest.fixture
def running_unit(broker, tmp_path, mock_pins):
    signer = Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    extra = f'\n[link]\nhub_public_key = "{tmp_path / "hub.pub.pem"}"\nreconnect_min_s = 0.2\n'
    site = demo_site(tmp_path).read_text().replace('[link]\nmqtt = ""', "[link_placeholder]")
    site = site.replace(
        "[link_placeholder]", f'[link]\nmqtt = "{broker.url}"' + extra.replace("\n[link]", "")
    )
    (tmp_path / "site.toml").write_text(site)
    loaded = apply_overrides(load(tmp_path / "site.toml"), RunOptions())
    unit = build_unit(loaded, RunOptions(loop=True, pin_factory=mock_pins, watchdog=False))
    thread = threading.Thread(target=unit.run, daemon=True)
    thread.start()
    hub = HubClient(broker.url, site="demo-store", signer=signer).connect()
    try:
        hub.wait_for(lambda rx: "online" in hub.statuses("demo-unit"), timeout=20)
        yield unit, hub, tmp_path, mock_pins
    finally:
        hub.close()
        unit.loop.stop("test over")
        thread.join(30)


def test_signed_commands_reach_the_running_loop(running_unit):
    unit, hub, _, pins = running_unit
    reply = hub.command("demo-unit", "disarm", {"zone": "display"})
    assert reply["ok"] is True, reply
    zones = unit.loop.s.engine.env.zones
    assert not zones.armed[zones.index["display"]]
    assert hub.command("demo-unit", "arm", {"zone": "display"})["ok"] is True
    assert zones.armed[zones.index["display"]]
    reply = hub.command("demo-unit", "disarm", {"zone": "no-such-zone"})
    assert reply["ok"] is False and "no-such-zone" in json.dumps(reply)
    reply = hub.command("demo-unit", "deterrent_test", {"name": "light", "seconds": 1})
    assert reply["ok"] is True, reply
    assert pins.pin(17).state  # switched on by the loop's deterrent controller
    deadline = time.monotonic() + 5
    while pins.pin(17).state and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pins.pin(17).state  # and off again after the test's second
    reply = hub.command("demo-unit", "diagnostics", {})
    assert reply["ok"] is True
    assert reply["result"]["loop"]["metrics"]["frames"] > 0


def test_config_set_applies_atomically_and_is_kept(running_unit):
    unit, hub, tmp_path, _ = running_unit
    text = (tmp_path / "site.toml").read_text().replace("threshold_s = 5.0", "threshold_s = 7.5")
    reply = hub.command("demo-unit", "config/set", {"text": text})
    assert reply["ok"] is True, reply
    assert (
        unit.loaded.config.rules.loitering.threshold_s == 5.0
    )  # the unit object keeps what it started with
    assert unit.control.loaded.config.rules.loitering.threshold_s == 7.5
    # kept in the state directory (an installed unit may not write its --config file),
    # the reply says where and what took effect
    saved = reply["result"]["saved"]
    assert saved == str(unit.data_dir / "config" / "site.toml")
    assert "threshold_s = 7.5" in Path(saved).read_text(encoding="utf-8")
    assert "threshold_s = 5.0" in (tmp_path / "site.toml").read_text()
    assert reply["result"]["applied"] == ["rules"] and reply["result"]["restart_required"] == []
    bad = text.replace("threshold_s = 7.5", "threshold_s = -1")
    reply = hub.command("demo-unit", "config/set", {"text": bad})
    assert reply["ok"] is False and "threshold_s" in json.dumps(reply)
    assert unit.control.loaded.config.rules.loitering.threshold_s == 7.5  # nothing changed


def test_vigil_diag_selftest_over_mqtt_sees_frames(running_unit, capsys, broker):
    _, _, tmp_path, _ = running_unit
    code = vigil_diag(
        ["--mqtt", broker.url, "--site", "demo-store", "--unit", "demo-unit", "--key",
         str(tmp_path / "hub.pem"), "--timeout", "20", "--json", "selftest", "--no-outputs"]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in out["checks"]}
    assert checks["frames"]["ok"] is True, checks["frames"]
    assert checks["model"]["ok"] is True, checks["model"]
    assert code in (0, 1)  # other checks (clock sync in a container) may fail; each says why
    assert all(c["ok"] or c["hint"] for c in out["checks"])
