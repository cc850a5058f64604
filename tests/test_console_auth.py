"""The serial console's authentication and frame bounds (issue 17), over a pty cable.

Read-only commands for anyone at the UART; mute, test-output, a self-test that pulses
outputs and snapshot only with the provisioned console key or the hub's signature; a stray
header declaring a huge frame costs at most a second of the console's attention."""

from __future__ import annotations

import os
import struct
import time

import pytest

from firmware.console import ConsoleServer, encode
from firmware.console.auth import ConsoleAuth, console_mac, load_console_key
from firmware.console.framing import MAGIC, VERSION, FrameReader
from firmware.diag import Diagnostics, UnitProbe
from firmware.link.signing import Signer, load_public_key
from tests.test_console import NullModem, small_cfg
from tools.diag.cli import main as vigil_diag
from tools.diag.transport import CommandFailed, SerialTransport

ACTING = [
    ("mute", {"minutes": 5}),
    ("test_output", {"name": "siren"}),
    ("selftest", {"outputs": True}),
    ("snapshot", {}),
    ("logs", {"lines": 5}),
]


@pytest.fixture
def console(tmp_path):
    """A console on one end of a pty cable, with a console key and the hub's key; the
    dispatch records what reached the unit's diagnostics."""
    nm = NullModem()
    key_file = tmp_path / "console.key"
    key_file.write_text(os.urandom(32).hex() + "\n")
    signer = Signer.generate(tmp_path / "hub.pem", tmp_path / "hub.pub.pem")
    diag = Diagnostics(UnitProbe(small_cfg(tmp_path), live=False))
    reached: list[str] = []

    def dispatch(cmd, args, progress):
        reached.append(cmd)
        return diag.handle(cmd, args, progress)

    auth = ConsoleAuth(load_console_key(key_file), load_public_key(tmp_path / "hub.pub.pem"))
    server = ConsoleServer(nm.a, dispatch, auth=auth).start()
    yield nm, server, reached, key_file, signer
    server.stop()
    nm.close()


def test_read_only_without_a_key_acting_only_with_one(console):
    nm, server, reached, key_file, signer = console
    anyone = SerialTransport(nm.b)
    try:
        assert anyone.request("status", {}, timeout=10)["unit"] == "cam-2"
        assert anyone.request("zones", {}, timeout=10)["zones"][0]["name"] == "shelf"
        assert "outputs" in anyone.request("outputs", {}, timeout=10)
        result = anyone.request("selftest", {}, timeout=60)  # read-only: outputs not pulsed
        assert [c["name"] for c in result["checks"]][0] == "frames"
        for cmd, args in ACTING:
            with pytest.raises(CommandFailed) as ei:
                anyone.request(cmd, args, timeout=10)
            assert f"{cmd} needs authentication" in ei.value.message
            assert "--console-key" in ei.value.hint
        assert reached == ["status", "zones", "outputs", "selftest"]
        assert server.refused == len(ACTING)
    finally:
        anyone.close()
    for creds in ({"console_key": load_console_key(key_file)}, {"signer": signer}):
        reached.clear()
        engineer = SerialTransport(nm.b, **creds)
        try:
            with pytest.raises(CommandFailed, match="no frame to snapshot yet"):
                engineer.request("snapshot", {}, timeout=10)  # reached the unit
            engineer.request("logs", {"lines": 5}, timeout=10)
        finally:
            engineer.close()
        assert reached == ["snapshot", "logs"], creds


def test_wrong_key_replay_and_tampering_are_refused(console, tmp_path):
    nm, server, reached, key_file, _signer = console
    port = SerialTransport(nm.b)  # raw frames on the engineer's end
    reader = FrameReader(port.port.read)

    def exchange(msg: dict) -> dict:
        port.port.write(encode(msg))
        return reader.read(timeout=10)

    try:
        nonce = exchange({"v": VERSION, "id": 1, "cmd": "hello", "args": {}})["result"]["nonce"]
        assert isinstance(nonce, bytes) and len(nonce) == 16
        good = console_mac(load_console_key(key_file), nonce, "mute", {"minutes": 5})
        wrong = console_mac(os.urandom(32), nonce, "mute", {"minutes": 5})
        r = exchange(
            {"v": 1, "id": 2, "cmd": "mute", "args": {"minutes": 5},
             "auth": {"nonce": nonce, "mac": wrong}}
        )  # fmt: skip
        assert not r["ok"] and "authentication failed" in r["error"]
        nonce = exchange({"v": 1, "id": 3, "cmd": "hello", "args": {}})["result"]["nonce"]
        good = console_mac(load_console_key(key_file), nonce, "mute", {"minutes": 5})
        tampered = {"v": 1, "id": 4, "cmd": "mute", "args": {"minutes": 600},
                    "auth": {"nonce": nonce, "mac": good}}  # fmt: skip
        assert "authentication failed" in exchange(tampered)["error"]
        nonce = exchange({"v": 1, "id": 5, "cmd": "hello", "args": {}})["result"]["nonce"]
        good = console_mac(load_console_key(key_file), nonce, "mute", {"minutes": 5})
        ok = {"v": 1, "id": 6, "cmd": "mute", "args": {"minutes": 5},
              "auth": {"nonce": nonce, "mac": good}}  # fmt: skip
        exchange(ok)  # reaches the unit (a stopped unit answers that it cannot mute)
        assert reached == ["mute"]
        replay = exchange({**ok, "id": 7})  # a recorded request sent again
        assert not replay["ok"] and "unknown or expired nonce" in replay["error"]
        assert reached == ["mute"]
    finally:
        port.close()


@pytest.mark.parametrize("declared", [1 << 20, 60_000])
def test_a_stray_header_does_not_make_the_console_deaf(console, declared):
    """Issue 17: a header declaring a 1 MiB frame made the console deaf until that many
    bytes had passed (91 s at 115200 baud). Now a length over 64 KiB is noise at once and a
    frame whose bytes stop coming is abandoned after a second."""
    nm, server, reached, *_ = console
    client = SerialTransport(nm.b)
    try:
        client.port.write(MAGIC + struct.pack(">I", declared) + b"\x01\x02")
        client.port.flush()
        t0 = time.monotonic()
        assert client.request("status", {}, timeout=8)["unit"] == "cam-2"
        assert time.monotonic() - t0 < 5.0  # within the client's first resend (3 s) + 1 s
    finally:
        client.close()
    assert reached == ["status"]
    if declared <= 64 * 1024:
        assert server.reader.resyncs >= 1


def test_vigil_diag_serial_authenticates_with_the_console_key(console, capsys):
    nm, _server, reached, key_file, _signer = console
    assert vigil_diag(["--serial", nm.b, "--timeout", "10", "mute", "5"]) == 1
    assert "needs authentication" in capsys.readouterr().err and reached == []
    vigil_diag(["--serial", nm.b, "--timeout", "10", "--console-key", str(key_file), "mute", "5"])
    assert "needs authentication" not in capsys.readouterr().err and reached == ["mute"]
    assert vigil_diag(["--serial", nm.b, "--timeout", "30", "selftest"]) in (0, 1)
    assert "outputs are not pulsed without --console-key" in capsys.readouterr().err
    assert reached[-1] == "selftest"


def test_console_key_file_is_checked(tmp_path):
    bad = {"zeros": "00" * 32, "short": "ab" * 8, "nothex": "zz" * 32}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError):
            load_console_key(tmp_path / name)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="not a regular file"):
        load_console_key(tmp_path / "fifo")  # never blocks on a FIFO
