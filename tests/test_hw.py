"""Board profiles (hw/) and the config checks that use them: unknown/reserved pins, unknown boards."""

from __future__ import annotations

import pytest

from firmware.cli import main as vigil
from firmware.config import ConfigError, parse_text
from firmware.deter.boards import list_boards, load_board, load_table
from firmware.deter.config import in_windows, parse_pin, quiet_windows


def test_profiles_for_pi4_pi5_cm4():
    assert {"pi4", "pi5", "cm4"} <= set(list_boards())
    for name in ("pi4", "pi5", "cm4"):
        b = load_board(name)
        assert b.name == name and b.gpio == (0, 27)
        assert "UART" in b.reserved[14] and "I2C1" in b.reserved[2]
        assert 17 in b.free_pins() and 14 not in b.free_pins()
        cams = load_table("cameras")
        assert all(c in cams for c in b.cameras)
        accel = load_table("accelerators")
        assert all(a in accel for a in b.accelerators)
    assert "coral_m2" not in load_board("pi4").accelerators  # no PCIe on a Pi 4
    assert load_board("pi5").reserved_reason(40).startswith("GPIO40 is not on this board")


def test_parse_pin_names():
    assert parse_pin(17) == parse_pin("GPIO17") == parse_pin("BCM17") == parse_pin("BOARD11") == 17
    assert parse_pin("gpio4") == 4 and parse_pin("BOARD27") == 0
    for bad in (28, -1, "BOARD1", "BOARD41", "GPIO28", "PIN7", True, None):
        assert parse_pin(bad) is None


def cfg_text(board: str, pin: object, extra: str = "") -> str:
    return (
        f'[site]\nboard = "{board}"\n[deterrents.light]\nkind = "light"\npin = {pin!r}\n'.replace(
            "'", '"'
        )
        + extra
    )


@pytest.mark.parametrize(
    "text, key, words",
    [
        (
            cfg_text("pi4", 14),
            "deterrents.light.pin",
            "GPIO14 is reserved on Raspberry Pi 4 Model B: UART TXD",
        ),
        (
            cfg_text("pi5", "BOARD3"),
            "deterrents.light.pin",
            "GPIO2 is reserved on Raspberry Pi 5: I2C1 SDA",
        ),
        (
            cfg_text("cm4", 0),
            "deterrents.light.pin",
            "GPIO0 is reserved on Raspberry Pi Compute Module 4: ID_SD",
        ),
        (cfg_text("pi4", 31), "deterrents.light.pin", "pin 31 does not exist"),
        (cfg_text("pi4", "GPIO99"), "deterrents.light.pin", "does not exist"),
        (cfg_text("pi3", 17), "site.board", "unknown board 'pi3' (known boards: cm4, pi4, pi5"),
        (
            cfg_text("pi4", 17, "[deterrence]\nmute_button = 15\n"),
            "deterrence.mute_button",
            "GPIO15 is reserved",
        ),
        (
            cfg_text("pi4", 17, "[deterrents.relay]\nkind = 'relay'\npin = 'BOARD11'\n"),
            "deterrents.relay.pin",
            "GPIO17 is already used by deterrents.light.pin",
        ),
        (
            cfg_text("pi4", 17, "[deterrents.buzz]\nkind = 'buzzer'\n"),
            "deterrents.buzz",
            "a buzzer output needs a pin",
        ),
        (
            cfg_text("pi4", 17, "[deterrents.light2]\npin = 18\non_s = 200\n"),
            "deterrents.light2",
            "longer than the safety limit max_on_s",
        ),
        (
            cfg_text("pi4", 17, "[deterrence]\nquiet_hours = ['22:00-25:00']\n"),
            "deterrence.quiet_hours",
            "not 'HH:MM-HH:MM'",
        ),
        (
            cfg_text(
                "pi4",
                17,
                "[deterrence.escalation.loitering]\nstages = [{after_s = 0, outputs = ['siren']}]\n",
            ),
            "deterrence.escalation.loitering.stages[0].outputs",
            "unknown deterrent 'siren'",
        ),
        (
            cfg_text(
                "pi4",
                17,
                "[deterrence.escalation.dancing]\nstages = [{after_s = 0, outputs = ['light']}]\n",
            ),
            "deterrence.escalation.dancing",
            "no rule named 'dancing'",
        ),
        (
            cfg_text(
                "pi4",
                17,
                "[deterrence.escalation.loitering]\nstages = [{after_s = 9, outputs = ['light']}, {after_s = 3, alert = true}]\n",
            ),
            "deterrence.escalation.loitering.stages",
            "stage 1 fires at 3.0 s, before stage 0",
        ),
        (
            cfg_text("pi4", 17, "[deterrence.escalation.loitering]\nstages = [{after_s = 0}]\n"),
            "deterrence.escalation.loitering.stages[0]",
            "a stage needs outputs or alert",
        ),
        (cfg_text("pi4", 17, "[site]\n"), "(TOML syntax)", ""),
    ],
)
def test_bad_outputs_refused_with_key_and_reason(text, key, words):
    with pytest.raises(ConfigError) as ei:
        parse_text(text.replace("'", '"'))
    joined = "\n".join(ei.value.problems)
    assert key in joined and words in joined, joined


def test_good_config_with_policy_passes():
    text = cfg_text(
        "pi5",
        "GPIO17",
        """
[deterrents.voice]
kind = "voice"
audio_file = "please-leave.wav"
[deterrents.siren]
kind = "serial"
port = "/dev/ttyUSB0"
[deterrence]
quiet_hours = ["21:30-07:00"]
mute_button = "BOARD29"
[deterrence.escalation.loitering]
stages = [
  {after_s = 0, outputs = ["light"]},
  {after_s = 15, outputs = ["voice"]},
  {after_s = 30, outputs = ["siren"], alert = true},
]
""",
    )
    cfg = parse_text(text)
    assert cfg.site.board == "pi5"
    assert [s.after_s for s in cfg.deterrence.escalation["loitering"].stages] == [0, 15, 30]


def test_quiet_windows_cross_midnight():
    w = quiet_windows(["22:00-07:00", "12:00-12:30"])
    assert in_windows(23 * 60, w) and in_windows(6 * 60 + 59, w) and in_windows(12 * 60 + 10, w)
    assert (
        not in_windows(7 * 60, w)
        and not in_windows(21 * 60 + 59, w)
        and not in_windows(12 * 60 + 30, w)
    )


def test_config_check_cli_exit_codes(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg_text("pi4", 15))
    assert vigil(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "deterrents.light.pin: GPIO15 is reserved on Raspberry Pi 4 Model B: UART RXD" in err
    good = tmp_path / "good.toml"
    good.write_text(cfg_text("pi4", 17))
    assert vigil(["config", "check", str(good)]) == 0
