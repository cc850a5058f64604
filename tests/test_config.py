"""Site config validation: every problem is reported with the key that has it."""

from __future__ import annotations

import pytest

from firmware.cli import main
from firmware.config import ConfigError, load, parse_text

BAD = """
[site]
unit_id = "cam 1"

[[zones]]
name = "shelf"
polygon = [[0.1, 0.1], [0.5, 0.5]]

[[zones]]
name = "bowtie"
polygon = [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]

[[zones]]
name = "outside"
polygon = [[0.1, 0.1], [1.5, 0.1], [0.5, 0.5]]

[rules.loitering]
threshold_s = -5

[rules.shoplifting]
enabled = true

[deterrents.light]
pin = 40
on_s = 0
cooldown_s = -1
"""


def test_every_problem_is_listed_with_its_key():
    with pytest.raises(ConfigError) as e:
        parse_text(BAD, "bad.toml")
    text = "\n".join(e.value.problems)
    assert "site.unit_id" in text
    assert "zones[0].polygon: a zone needs at least 3 points, got 2" in text
    assert "zones[1].polygon" in text and "self-intersecting" in text
    assert "zones[2].polygon" in text and "outside the image" in text
    assert "rules.loitering.threshold_s" in text
    assert "rules.shoplifting: Extra inputs are not permitted" in text
    assert "deterrents.light.pin" in text and "does not exist" in text
    assert "deterrents.light.on_s" in text
    assert "deterrents.light.cooldown_s" in text


def test_cross_references_are_checked():
    text = """
[[zones]]
name = "shelf"
polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
[rules.loitering]
zones = ["nowhere"]
deterrent = "siren"
"""
    with pytest.raises(ConfigError, match="unknown zone 'nowhere'"):
        parse_text(text)


def test_toml_syntax_error_is_one_clear_problem():
    with pytest.raises(ConfigError) as e:
        parse_text("[site\nunit_id=1")
    assert "TOML syntax" in e.value.problems[0]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "nope.toml")


def test_config_check_cli_prints_every_problem_and_fails(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "problem(s)" in err
    assert err.count("\n") >= 9
    assert "zones[0].polygon" in err


def test_config_check_cli_accepts_the_demo(capsys):
    from firmware.commands.run import DEMO_CONFIG

    assert main(["config", "check", str(DEMO_CONFIG)]) == 0
    assert "OK" in capsys.readouterr().out


def test_defaults_validate():
    cfg = parse_text("")
    assert cfg.detector.threads >= 1
    assert cfg.link.topic_prefix == "vigil"
