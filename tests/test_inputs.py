"""Store-system inputs: till journal parsing, contact inputs on gpiozero mock pins, the fused
rules (eas_exit, till_unattended, fire_exit_open, panic) offline and in a running unit."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from firmware.config import ConfigError, load
from firmware.inputs.config import ContactInputConfig, TillConfig
from firmware.inputs.contacts import ContactInput
from firmware.inputs.records import ContactChange, InputFault
from firmware.inputs.till import Pseudonymiser, TillParser

ROOT = Path(__file__).resolve().parents[1]
RECEIPT = ROOT / "docs/examples/till-receipt.txt"
PSEUD = Pseudonymiser(b"s" * 32)


def _parser(**kw) -> TillParser:
    return TillParser.for_config(
        TillConfig(source="tcp://127.0.0.1:9", zone="a", customer_zone="b", **kw), PSEUD
    )


# -- till journal ----------------------------------------------------------------------------


def test_vigil_format_parses_every_kind_with_fields():
    p = _parser()
    lines = {
        "2026-12-02T10:15:03 REFUND till=2 amount=12.50 cashier=1042": ("refund", "2", 12.5),
        "SALE amount=3,20 till=7": ("sale", "7", 3.2),
        "NO_SALE till=3 cashier=9": ("no_sale", "3", None),
        "VOID till=1 amount=1.19": ("void", "1", 1.19),
        "PRICE_OVERRIDE till=1 amount=2.99": ("price_override", "1", 2.99),
    }
    for line, (kind, till, amount) in lines.items():
        tx = p.parse(line, 1.0)
        assert tx is not None, line
        assert (tx.kind, tx.till, tx.amount) == (kind, till, amount)
    assert p.unparsed == 0 and p.parsed == 5


def test_receipt_stream_gives_its_transactions_with_header_context():
    p = _parser(format="receipt")
    txs = [tx for line in RECEIPT.read_text().splitlines() if (tx := p.parse(line, 0.0))]
    assert [t.kind for t in txs] == [
        "sale",
        "refund",
        "sale",
        "no_sale",
        "void",
        "price_override",
        "sale",
    ]
    assert txs[1].amount == -12.5 and txs[1].till == "02"
    assert txs[4].amount == 14.99
    assert txs[3].cashier == PSEUD("1042") and txs[4].cashier == PSEUD("2210")
    assert p.unparsed == 0  # items, separators, footers are not transactions, nor errors


def test_cashier_ids_are_pseudonymised_with_the_site_secret():
    a = _parser().parse("REFUND till=2 cashier=1042", 0.0)
    other = TillParser.for_config(
        TillConfig(source="tcp://h:1", zone="a", customer_zone="b"), Pseudonymiser(b"t" * 32)
    ).parse("REFUND till=2 cashier=1042", 0.0)
    assert a.cashier == PSEUD("1042") and "1042" not in a.cashier
    assert other.cashier != a.cashier  # another site cannot link the same cashier


def test_unparseable_line_is_counted_and_logged_with_its_text(caplog):
    p = _parser()
    with caplog.at_level(logging.WARNING):
        assert p.parse("%%% printer jam %%%", 0.0) is None
        assert p.parse("REFUND till=1", 0.0) is not None
    assert p.unparsed == 1
    assert "printer jam" in caplog.text


def test_secret_file_is_made_once_private_and_refused_when_weak(tmp_path):
    path = tmp_path / "state" / "till-secret"
    a = Pseudonymiser.from_file(path, create=True)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert Pseudonymiser.from_file(path, create=True)("1") == a("1")
    weak = tmp_path / "weak"
    weak.write_bytes(b"\0" * 32)
    with pytest.raises(ValueError, match="all zeros"):
        Pseudonymiser.from_file(weak)


def test_bad_till_pattern_and_source_are_refused_naming_the_key(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(
        '[[zones]]\nname = "a"\npolygon = [[0,0],[1,0],[1,1]]\n'
        '[till]\nsource = "http://till"\nzone = "a"\ncustomer_zone = "a"\n'
        'patterns = [{kind = "refund", regex = "(?P<who>x"}]\n'
    )
    with pytest.raises(ConfigError) as e:
        load(site)
    text = "\n".join(e.value.problems)
    assert "till.source" in text and "till.patterns" in text


# -- contact inputs on mock pins -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_contact_is_debounced_and_stamped_at_its_first_edge(mock_pins):
    clock = Clock()
    cfg = ContactInputConfig(kind="door", pin=5, zone=None, debounce_s=0.05)
    inp = ContactInput("door", cfg, mock_pins, clock)
    pin = mock_pins.pin(5)
    assert inp.poll(clock.t) == []  # pulled up, contact open: inactive
    clock.t = 101.0
    pin.drive_low()  # contact closes to ground: active
    clock.t = 101.01
    pin.drive_high()  # a bounce shorter than debounce_s
    clock.t = 101.02
    pin.drive_low()
    assert inp.poll(101.03) == []  # not yet stable for 50 ms
    (change,) = inp.poll(101.08)
    assert isinstance(change, ContactChange) and change.active
    assert change.t == pytest.approx(101.02, abs=0.021)
    clock.t = 102.0
    pin.drive_high()
    (off,) = inp.poll(102.1)
    assert not off.active and off.t == pytest.approx(102.0)
    inp.close()


def test_chattering_contact_is_reported_and_ignored_until_quiet(mock_pins):
    clock = Clock()
    cfg = ContactInputConfig(
        kind="eas_gate", pin=6, zone="exit", chatter_changes=5, chatter_window_s=2.0
    )
    inp = ContactInput("gate", cfg, mock_pins, clock)
    pin = mock_pins.pin(6)
    for i in range(12):
        clock.t += 0.02
        (pin.drive_low if i % 2 == 0 else pin.drive_high)()
    out = inp.poll(clock.t)
    assert [r.code for r in out if isinstance(r, InputFault)] == ["input_chatter"]
    assert not any(isinstance(r, ContactChange) for r in out)
    clock.t += 5.0
    out = inp.poll(clock.t)
    assert [r.code for r in out if isinstance(r, InputFault)] == ["input_recovered"]
    inp.close()


def test_input_on_a_used_or_reserved_pin_is_refused_by_config_check(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(
        '[[zones]]\nname = "exit"\npolygon = [[0,0],[1,0],[1,1]]\n'
        '[deterrents.light]\nkind = "light"\npin = 17\n'
        '[inputs.gate]\nkind = "eas_gate"\npin = 17\nzone = "exit"\n'
        '[inputs.door]\nkind = "door"\npin = 2\n'
        '[inputs.panic]\nkind = "panic"\npin = "GPIO99"\n'
    )
    with pytest.raises(ConfigError) as e:
        load(site)
    text = "\n".join(e.value.problems)
    assert "inputs.gate.pin: GPIO17 is already used by deterrents.light.pin" in text
    assert "inputs.door.pin: GPIO2 is reserved" in text
    assert "inputs.panic.pin" in text


def test_eas_gate_needs_a_known_zone(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('[inputs.gate]\nkind = "eas_gate"\npin = 5\nzone = "nowhere"\n')
    with pytest.raises(ConfigError) as e:
        load(site)
    assert any("inputs.gate.zone" in p and "nowhere" in p for p in e.value.problems)


def test_receipt_format_counts_line_noise_not_free_text():
    p = _parser(format="receipt")
    assert p.parse("  THANK YOU, SEE YOU SOON", 0.0) is None
    assert p.parse("\x1b@\x1d!\x00garbage", 0.0) is None
    assert p.unparsed == 1


# -- fused rules, offline: vigil-eval behave --inputs ---------------------------------------

REPLAY_SITE = """
[[zones]]
name = "exit"
purpose = "exit"
polygon = [[0.8, 0.0], [1.0, 0.0], [1.0, 1.0], [0.8, 1.0]]
[[zones]]
name = "back_door"
purpose = "exit"
polygon = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.3], [0.0, 0.3]]
[[zones]]
name = "counter"
purpose = "till"
polygon = [[0.3, 0.0], [0.6, 0.0], [0.6, 0.4], [0.3, 0.4]]
[[zones]]
name = "front_of_till"
purpose = "till"
polygon = [[0.3, 0.6], [0.6, 0.6], [0.6, 1.0], [0.3, 1.0]]
[[zones]]
name = "fire_door"
purpose = "fire_exit"
polygon = [[0.0, 0.6], [0.2, 0.6], [0.2, 1.0], [0.0, 1.0]]
[inputs.gate]
kind = "eas_gate"
pin = 5
zone = "exit"
[inputs.back_gate]
kind = "eas_gate"
pin = 6
zone = "back_door"
[inputs.fire]
kind = "fire_exit"
pin = 13
zone = "fire_door"
[inputs.panic]
kind = "panic"
pin = 19
[till]
source = "serial:///dev/ttyUSB1"
zone = "counter"
customer_zone = "front_of_till"
[rules.loitering]
enabled = false
"""


def _walker_tracks(path: Path, fps: float = 25.0) -> None:
    """Person 1 walks left to right along the bottom of a 400x300 frame (feet y=280) over
    frames 1-250 and leaves through the exit strip; nobody is near the back door."""
    rows = []
    for f in range(1, 251):
        x = 20 + (f - 1) * (360 / 249)
        rows.append(f"{f},1,{x - 15:.1f},200,30,80,1,1")
    path.write_text("\n".join(rows) + "\n")


def _behave(tmp_path: Path, inputs: list[dict], site_extra: str = "") -> list[dict]:
    from tools.eval.cli import main

    site = tmp_path / "site.toml"
    site.write_text(REPLAY_SITE + site_extra)
    tracks = tmp_path / "tracks.txt"
    _walker_tracks(tracks)
    inp = tmp_path / "inputs.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in inputs))
    out = tmp_path / "events.jsonl"
    rc = main(["behave", "--tracks", str(tracks), "--site", str(site), "--size", "400x300",
               "--inputs", str(inp), "--out", str(out)])  # fmt: skip
    assert rc == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_replay_fuses_inputs_with_tracks_and_stays_quiet_for_near_misses(tmp_path):
    # the walker is in the exit strip (x >= 320) from about frame 209 (t = 8.3 s)
    events = _behave(
        tmp_path,
        [
            {"t": 9.0, "input": "gate", "state": "active"},
            {"t": 9.5, "input": "gate", "state": "inactive"},
            {"t": 3.0, "input": "back_gate", "state": "active"},  # nobody near: near miss
            {"t": 3.2, "input": "back_gate", "state": "inactive"},
            {"t": 1.0, "input": "fire", "state": "active"},
            {"t": 4.0, "input": "fire", "state": "inactive"},
            {"t": 2.0, "input": "panic", "state": "active"},
            {"t": 2.5, "input": "panic", "state": "inactive"},
            # the walker crosses front_of_till (x 120..240) around t = 3.3..6.6 s
            {"t": 5.0, "input": "till", "line": "REFUND till=2 amount=12.50 cashier=1042"},
            {"t": 12.0, "input": "till", "transaction": "no_sale", "till": "2"},  # gone by then
        ],
    )
    by_type: dict[str, list[dict]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e)
    (eas,) = by_type["eas_exit"]
    assert eas["explanation"]["input"] == "gate" and eas["track_ids"] == [1]
    assert abs(eas["explanation"]["dt_s"]) <= 5.0
    assert eas["zone"] == "exit"
    (unattended,) = by_type["till_unattended"]  # the no-sale with nobody there, not the refund
    assert unattended["explanation"]["transaction"] == "no_sale"
    assert unattended["explanation"]["customers_seen"] == 0
    (fire,) = by_type["fire_exit_open"]
    assert fire["severity"] == "warn" and fire["start_time"] == pytest.approx(1.0, abs=0.05)
    assert fire["end_time"] == pytest.approx(4.0, abs=0.1)
    (panic,) = by_type["panic"]
    assert panic["severity"] == "alert" and panic["start_time"] == pytest.approx(2.0, abs=0.05)
    inputs = [
        (e["explanation"]["input"], e["explanation"]["state"]) for e in by_type["store_input"]
    ]
    assert ("back_gate", "active") in inputs and len(inputs) == 8
    tills = by_type["till"]
    assert {t["explanation"]["transaction"] for t in tills} == {"refund", "no_sale"}
    assert all("1042" not in json.dumps(t) for t in tills)  # cashier pseudonymised


def test_fire_exit_left_open_escalates_to_alert(tmp_path):
    events = _behave(
        tmp_path,
        [{"t": 0.5, "input": "fire", "state": "active"}],
        "[rules.fire_exit_open]\nalert_after_s = 3.0\n",
    )
    (fire,) = [e for e in events if e["type"] == "fire_exit_open"]
    assert fire["severity"] == "alert"
    assert fire["explanation"]["alert_after_s"] == 3.0


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"t": 1, "input": "nope", "state": "active"}', "unknown input 'nope'"),
        ('{"t": -1, "input": "gate", "state": "active"}', "'t' must be"),
        ('{"t": 1, "input": "gate", "state": "on"}', "'state' must be"),
        ('{"t": 1, "input": "till", "transaction": "steal"}', "'line' or 'transaction'"),
        ("not json", "not JSON"),
    ],
)
def test_bad_inputs_file_names_the_line(tmp_path, capsys, line, message):
    from tools.eval.cli import main

    site = tmp_path / "site.toml"
    site.write_text(REPLAY_SITE)
    tracks = tmp_path / "tracks.txt"
    _walker_tracks(tracks)
    inp = tmp_path / "inputs.jsonl"
    inp.write_text('{"t": 0.5, "input": "panic", "state": "active"}\n' + line + "\n")
    rc = main(["behave", "--tracks", str(tracks), "--site", str(site), "--size", "400x300",
               "--inputs", str(inp)])  # fmt: skip
    assert rc != 0
    err = capsys.readouterr().err
    assert f"{inp}:2" in err and message in err


# -- a running unit: mock pins and a pty pair -----------------------------------------------

LIVE_EXTRA = """
[[zones]]
name = "floor"
purpose = "exit"
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
[[zones]]
name = "corner"
purpose = "exit"
polygon = [[0.0, 0.0], [0.1, 0.0], [0.1, 0.03], [0.0, 0.03]]
[inputs.gate]
kind = "eas_gate"
pin = 5
zone = "floor"
[inputs.side_gate]
kind = "eas_gate"
pin = 6
zone = "corner"
[inputs.stockroom]
kind = "door"
pin = 13
[inputs.panic]
kind = "panic"
pin = 19
[till]
source = "serial://{tty}"
zone = "display"
customer_zone = "corner"
[rules.till_unattended]
window_s = 1.0
"""


def test_running_unit_fuses_pins_and_till_stream(tmp_path, mock_pins):
    from firmware.unit import RunOptions, apply_overrides, build_unit
    from tests.test_run import demo_site

    master, slave = os.openpty()
    try:
        site = demo_site(tmp_path, LIVE_EXTRA.replace("{tty}", os.ttyname(slave)))
        loaded = apply_overrides(load(site), RunOptions(mqtt="none"))
        opts = RunOptions(fast=True, max_frames=160, pin_factory=mock_pins, watchdog=False)
        unit = build_unit(loaded, opts)
        assert "inputs" in unit.birth["capabilities"]
        pins = {
            n: mock_pins.pin(p) for n, p in (("gate", 5), ("side", 6), ("door", 13), ("panic", 19))
        }
        events: list = []
        frames = [0]
        original = unit.loop.emit

        def emit(evs):
            events.extend(evs)
            original(evs)
            frames[0] += 1
            if frames[0] == 30:
                for p in pins.values():
                    p.drive_low()  # contacts close to ground: active
                os.write(master, b"junk \x1b\x00 line\nREFUND till=2 amount=9.99 cashier=7731\n")
                time.sleep(0.2)  # longer than debounce_s, on the wall clock
            if frames[0] == 40:
                for p in pins.values():
                    p.drive_high()
                time.sleep(0.2)

        unit.loop.emit = emit
        unit.run()
    finally:
        os.close(master)
        os.close(slave)
    types = [e.type for e in events]
    gates = [e for e in events if e.type == "eas_exit"]
    assert [g.explain["input"] for g in gates] == ["gate"]  # the empty corner's gate: quiet
    assert gates[0].track_ids
    assert "panic" in types
    panic = next(e for e in events if e.type == "panic")
    assert panic.severity.name == "ALERT"
    inputs = {(e.explain["input"], e.explain["state"]) for e in events if e.type == "store_input"}
    assert {("stockroom", "active"), ("stockroom", "inactive"), ("side_gate", "active")} <= inputs
    (till,) = [e for e in events if e.type == "till"]
    assert till.explain["transaction"] == "refund" and till.explain["amount"] == 9.99
    assert "7731" not in json.dumps(till.to_dict())
    (unattended,) = [e for e in events if e.type == "till_unattended"]
    assert unattended.explain["customer_zone"] == "corner"
    assert any(e.type == "health" and e.rule == "till_unparsed" for e in events)


def test_till_over_tcp_reconnects_after_the_feed_drops():
    import queue
    import socket
    import threading

    from firmware.inputs.journal import TillReader

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    cfg = TillConfig(source=f"tcp://127.0.0.1:{port}", zone="a", customer_zone="b")
    out: queue.Queue = queue.Queue()
    reader = TillReader(cfg, TillParser.for_config(cfg, PSEUD), out).start()

    def serve(lines: list[bytes]) -> None:
        conn, _ = srv.accept()
        for line in lines:
            conn.sendall(line)
        conn.close()  # the till drops the connection

    try:
        t = threading.Thread(
            target=serve, args=([b"REFUND till=1 amount=2.00\n", b"VOID till=1\n"],)
        )
        t.start()
        got = [out.get(timeout=10), out.get(timeout=10)]
        t.join()
        assert [r.kind for r in got] == ["refund", "void"]
        assert out.get(timeout=10).code == "till_unreadable"  # the drop is reported
        t = threading.Thread(target=serve, args=([b"NO_SALE till=1\n"],))
        t.start()  # the reader connects again (backoff 1 s)
        assert out.get(timeout=10).kind == "no_sale"
        t.join()
    finally:
        reader.stop()
        srv.close()
