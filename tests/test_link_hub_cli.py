"""`vigil-hub`: keygen, acl, watch and cmd against a real broker and a real Link."""

from __future__ import annotations

import threading

import pytest

from firmware.link import Link
from firmware.link.config import LinkConfig
from tests.test_link import make_event
from tests.test_link_commands import GOOD_CONFIG, UnitDouble, with_link
from tools.hub import cli

pytest.importorskip("pycddl")


@pytest.fixture
def unit(broker, tmp_path):
    assert cli.main(["keygen", str(tmp_path / "hub.pem")]) == 0
    assert (tmp_path / "hub.pub.pem").exists()
    assert (tmp_path / "hub.pem").stat().st_mode & 0o077 == 0  # private key not readable by others
    control = UnitDouble()
    link = Link(
        LinkConfig(mqtt=broker.url, hub_public_key=str(tmp_path / "hub.pub.pem")),
        site="s1",
        unit="u1",
        data_dir=tmp_path / "unit",
        birth=dict(
            firmware="0.1.0",
            models=[{"name": "m", "sha256": "00"}],
            config_hash="",
            capabilities=[],
        ),
        control=control,
    )
    link.start()
    yield link, control
    link.stop()


def test_keygen_refuses_to_overwrite(tmp_path, capsys):
    assert cli.main(["keygen", str(tmp_path / "k.pem")]) == 0
    assert cli.main(["keygen", str(tmp_path / "k.pem")]) == 2
    assert "not overwriting" in capsys.readouterr().err


def test_cmd_signs_sends_and_prints_the_reply(unit, broker, tmp_path, capsys):
    link, control = unit
    base = [
        "cmd",
        "--mqtt",
        broker.url,
        "--site",
        "s1",
        "--unit",
        "u1",
        "--key",
        str(tmp_path / "hub.pem"),
    ]
    assert cli.main([*base, "disarm", "zone=till"]) == 0
    assert control.armed["till"] is False
    assert '"ok": true' in capsys.readouterr().out
    assert cli.main([*base, "mute", "minutes=5"]) == 0 and control.calls[-1] == ("mute", 5)
    assert cli.main([*base, "arm", "zone=attic"]) == 1  # refused: exit 1, reason printed
    assert "rejected" in capsys.readouterr().out
    site = tmp_path / "site.toml"
    site.write_text(with_link(GOOD_CONFIG.replace("0.5, 0.5", "0.7, 0.7"), link))
    assert cli.main([*base, "config/set", "--file", str(site)]) == 0
    assert control.config == site.read_text()
    assert cli.main([*base, "arm", "zone"]) == 2  # not name=value
    assert "name=value" in capsys.readouterr().err


def test_watch_prints_events_readably(unit, broker, capsys):
    link, _control = unit
    done = threading.Event()

    def feed() -> None:
        while not done.wait(0.2):
            link.publish_event(make_event(7))

    t = threading.Thread(target=feed)
    t.start()
    try:
        rc = cli.main(["watch", "--mqtt", broker.url, "--site", "s1", "--count", "5"])
    finally:
        done.set()
        t.join()
    out = capsys.readouterr().out
    assert rc == 0
    assert "s1/u1 BIRTH firmware 0.1.0 models [m]" in out
    assert "s1/u1 EVENT notice loitering instant zone till tracks [0] dwell_s=12.5" in out
    assert "!!" not in out  # nothing broke the contract


def test_acl_block(capsys):
    assert cli.main(["acl", "s1", "u1"]) == 0
    out = capsys.readouterr().out
    assert "user s1.u1" in out and "topic write vigil/s1/u1/events" in out
    assert "topic read vigil/s1/u1/cmd/#" in out


def test_every_cddl_rule_of_the_contract_compiles():
    from tools.hub.contract import KIND_RULES, _schema, cddl_text, rule_names

    names = rule_names(cddl_text())
    assert set(KIND_RULES.values()) <= set(names)
    from firmware.link.commands import ARGS

    assert {f"args-{n.replace('/', '-')}" for n in ARGS} <= set(names)  # every command documented
    for name in names:
        _schema(name)  # raises if the CDDL does not parse


def test_stream_check_spots_duplicates_and_gaps():
    from tools.hub.client import Received

    def ev(seq: int, msg_id: str, session: int = 1) -> Received:
        m = {"msg_id": msg_id, "seq": seq, "session": session}
        return Received("vigil/s1/u1/events", "events", "s1", "u1", b"", m, False)

    check = cli.StreamCheck()
    assert check.note(ev(0, "a")) is None
    assert check.note(ev(1, "b")) is None
    assert "duplicate" in check.note(ev(1, "b"))
    assert "GAP: 2 event(s)" in check.note(ev(4, "e"))
    assert check.note(ev(0, "z", session=2)) is None  # a new session starts from 0
