"""The serial console: framing, a pty null-modem cable, the unit-socket bridge, `vigil console`."""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest

from firmware.config import validate
from firmware.console import Bridge, ConsoleServer, FrameReader, LocalServer, encode
from firmware.console.framing import FrameError
from firmware.diag import DiagError, Diagnostics, UnitProbe
from tools.diag.cli import main as vigil_diag
from tools.diag.transport import CommandFailed, SerialTransport, Unreachable

REPO = Path(__file__).resolve().parents[1]


class NullModem:
    """Two pty pairs joined master to master: a serial cable between two device paths."""

    def __init__(self) -> None:
        self.m1, self.s1 = os.openpty()
        self.m2, self.s2 = os.openpty()
        for fd in (self.s1, self.s2):
            tty.setraw(fd)
        self.a, self.b = os.ttyname(self.s1), os.ttyname(self.s2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        other = {self.m1: self.m2, self.m2: self.m1}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(other), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    continue
                view = memoryview(data)
                while view and not self._stop.is_set():
                    try:
                        n = os.write(other[fd], view)
                    except BlockingIOError:
                        time.sleep(0.001)
                        continue
                    view = view[n:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self.m1, self.m2, self.s1, self.s2):
            os.close(fd)


@pytest.fixture
def cable():
    nm = NullModem()
    yield nm
    nm.close()


def small_cfg(tmp_path, **extra):
    return validate(
        {
            "site": {"site_id": "shop-1", "unit_id": "cam-2"},
            "storage": {"data_dir": str(tmp_path)},
            "link": {"mqtt": ""},
            "zones": [
                {
                    "name": "shelf",
                    "purpose": "high_value",
                    "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]],
                }
            ],
            **extra,
        }
    )


def test_frames_survive_noise_and_corruption():
    msgs = [
        {"id": i, "cmd": "status", "args": {"blob": bytes(range(256)) * i}} for i in range(1, 4)
    ]
    bad = bytearray(encode({"id": 99, "cmd": "lost"}))
    bad[-1] ^= 0xFF  # wrong CRC
    stream = (
        b"\x00garbage\xa5"
        + encode(msgs[0])
        + bytes(bad)
        + b"\xa5\x56\xff\xff\xff\xff"
        + encode(msgs[1])
    )
    stream += encode(msgs[2])
    buf = io.BytesIO(stream)
    reader = FrameReader(buf.read)
    got = [reader.read(timeout=1) for _ in range(3)]
    assert got == msgs
    assert reader.bad_frames >= 2 and reader.dropped_bytes > 0
    with pytest.raises(FrameError, match="timed out"):
        reader.read(timeout=0.2)


def test_console_answers_over_a_pty_cable(cable, tmp_path):
    probe = UnitProbe(small_cfg(tmp_path), live=False)
    server = ConsoleServer(cable.a, Diagnostics(probe).handle).start()
    client = SerialTransport(cable.b)
    try:
        status = client.request("status", {}, timeout=10)
        assert status["unit"] == "cam-2" and status["site"] == "shop-1" and status["live"] is False
        zones = client.request("zones", {}, timeout=10)
        assert zones["zones"][0]["name"] == "shelf" and zones["zones"][0]["people"] == 0
        with pytest.raises(CommandFailed) as ei:
            client.request("reboot", {}, timeout=10)
        assert "unknown command 'reboot'" in ei.value.message and "selftest" in ei.value.hint
        with pytest.raises(CommandFailed, match="snapshot needs authentication"):
            client.request("snapshot", {}, timeout=10)  # no key: tests/test_console_auth.py
        steps = []
        result = client.request(
            "selftest", {"outputs": False}, progress=lambda i, n, w: steps.append(w), timeout=60
        )
        names = [c["name"] for c in result["checks"]]
        assert names == ["frames", "model", "edgetpu", "outputs", "storage", "clock", "broker"]
        assert steps[:3] == ["frames", "model", "edgetpu"] and steps[-1] == "done"
        frames = result["checks"][0]
        assert not frames["ok"] and "systemctl status vigil" in frames["hint"]
        assert result["ok"] is False
    finally:
        client.close()
        server.stop()
    assert server.served == 5


def test_absent_serial_device_is_a_clear_error(capsys):
    assert vigil_diag(["--serial", "/dev/ttyVIGIL-absent", "status"]) == 3
    err = capsys.readouterr().err
    assert "serial device /dev/ttyVIGIL-absent: not found" in err and "hint:" in err
    assert vigil_diag(["--serial", "/dev/ttyVIGIL-absent", "--json", "status"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "not found" in out["error"]


def test_silent_unit_times_out_with_a_hint(cable, capsys):
    assert vigil_diag(["--serial", cable.b, "--timeout", "1", "status"]) == 3
    err = capsys.readouterr().err
    assert "no answer from the unit" in err and "vigil-console" in err


def test_unreachable_broker_is_a_clear_error(capsys):
    assert vigil_diag(["--mqtt", "mqtt://127.0.0.1:1", "status"]) == 3
    err = capsys.readouterr().err
    assert "cannot reach the broker at 127.0.0.1:1" in err
    assert vigil_diag(["--mqtt", "http://x", "status"]) == 3
    assert "is not mqtt://HOST:PORT" in capsys.readouterr().err
    assert vigil_diag(["status"]) == 2  # neither --serial nor --mqtt


def test_bridge_prefers_the_running_unit_and_falls_back(tmp_path):
    calls = []

    def unit(cmd, args, progress):
        progress(0, 1, "working")
        if cmd == "fail":
            raise DiagError("it broke", "fix it")
        calls.append(cmd)
        return {"from": "unit", "cmd": cmd}

    sock = tmp_path / "diag.sock"
    bridge = Bridge(sock, lambda cmd, args, progress: {"from": "standalone"})
    assert bridge("status", {}, lambda *a: None) == {"from": "standalone"}  # unit down
    server = LocalServer(sock, unit).start()
    try:
        seen = []
        assert bridge("status", {}, lambda i, n, w: seen.append(w)) == {
            "from": "unit",
            "cmd": "status",
        }
        assert seen == ["working"]
        with pytest.raises(DiagError) as ei:
            bridge("fail", {}, lambda *a: None)
        assert ei.value.message == "it broke" and ei.value.hint == "fix it"
    finally:
        server.stop()
    assert calls == ["status"]
    assert bridge("status", {}, lambda *a: None) == {"from": "standalone"}  # unit gone again


def test_vigil_console_command_serves_the_uart(cable, tmp_path):
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f'[site]\nsite_id = "shop-9"\nunit_id = "cam-9"\n[storage]\ndata_dir = "{tmp_path}"\n[link]\nmqtt = ""\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware.cli", "console", "--port", cable.a, "--config", str(cfg),
         "--socket", str(tmp_path / "none.sock")],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        client = SerialTransport(cable.b)
        try:
            status = client.request("status", {}, timeout=30)
        finally:
            client.close()
        assert status["unit"] == "cam-9" and status["live"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == 0


def test_vigil_console_refuses_absent_port(tmp_path, capsys):
    from firmware.cli import main as vigil

    cfg = tmp_path / "site.toml"
    cfg.write_text('[link]\nmqtt = ""\n')
    assert vigil(["console", "--port", "/dev/ttyVIGIL-absent", "--config", str(cfg)]) == 1
    assert "cannot open serial device /dev/ttyVIGIL-absent" in capsys.readouterr().err


def test_transport_errors_are_typed():
    with pytest.raises(Unreachable):
        SerialTransport("/dev/ttyVIGIL-absent")
