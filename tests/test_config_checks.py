"""Cross-section checks and the one time-of-day grammar / path resolver / config hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from firmware.cli import main
from firmware.config import ConfigError, LoadedConfig, parse_text
from firmware.config.base import config_hash, parse_time_of_day, resolve_path


def _check(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    rc = main(["config", "check", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_config_check_rejects_an_unknown_time_zone_without_quiet_hours(tmp_path, capsys):
    rc, out = _check(tmp_path, '[site]\ntimezone = "Mars/Olympus"\n', capsys)
    assert rc == 1
    assert "site.timezone" in out and "Mars/Olympus" in out


def test_config_check_rejects_a_protect_score_above_the_masking_score(tmp_path, capsys):
    text = "[detector]\nbackground_protect_score = 0.5\n[privacy]\nmin_score = 0.2\n"
    rc, out = _check(tmp_path, text, capsys)
    assert rc == 1
    assert "detector.background_protect_score" in out and "privacy.min_score" in out
    # equal is fine, and so is any score once the prior is off
    assert parse_text("[detector]\nbackground_protect_score = 0.2\n[privacy]\nmin_score = 0.2\n")
    assert parse_text(
        "[detector]\nbackground = false\nbackground_protect_score = 0.9\n[privacy]\nmin_score = 0.2\n"
    )


def test_one_time_of_day_grammar_for_schedules_and_quiet_hours():
    cfg = parse_text(
        '[schedule]\nopen_time = "8:00"\nclose_time = "21:30"\n'
        '[deterrence]\nquiet_hours = ["8:00-09:00", "22:00-6:30"]\n'
    )
    assert (cfg.schedule.open_time, cfg.schedule.close_time) == ("08:00", "21:30")
    assert cfg.deterrence.quiet_hours == ["08:00-09:00", "22:00-06:30"]
    assert parse_time_of_day("8:05") == 485
    for bad in (
        'open_time = "24:00"\nclose_time = "09:00"',
        'open_time = "8h"\nclose_time = "9:00"',
    ):
        with pytest.raises(ConfigError) as ei:
            parse_text(f"[schedule]\n{bad}\n")
        assert "schedule.open_time" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        parse_text('[deterrence]\nquiet_hours = ["8:00-8:00"]\n')
    assert "deterrence.quiet_hours[0]" in str(ei.value)


def test_paths_resolve_against_the_config_folder_with_home_expanded(tmp_path):
    loaded = LoadedConfig(parse_text(""), tmp_path / "etc" / "site.toml", "")
    assert loaded.resolve("voice/warn.wav") == tmp_path / "etc" / "voice" / "warn.wav"
    assert loaded.resolve("/abs/x") == Path("/abs/x")
    assert resolve_path("~/x", None) == Path.home() / "x"


def test_config_hash_is_the_sha256_of_the_text():
    assert config_hash("a = 1\n") == hashlib.sha256(b"a = 1\n").hexdigest()


def test_the_config_the_hub_set_is_preferred_at_the_next_start(tmp_path):
    from firmware.config import load
    from firmware.unit import RunOptions, apply_overrides, prefer_stored

    site = tmp_path / "etc" / "site.toml"
    site.parent.mkdir()
    data = tmp_path / "state"
    site.write_text(f'[storage]\ndata_dir = "{data}"\n[rules.loitering]\nthreshold_s = 5.0\n')
    opts = RunOptions(unit="u7")
    loaded = apply_overrides(load(site), opts)
    assert prefer_stored(loaded, opts) == (loaded, None)  # nothing stored yet
    stored = data / "config" / "site.toml"
    stored.parent.mkdir(parents=True)
    stored.write_text(f'[storage]\ndata_dir = "{data}"\n[rules.loitering]\nthreshold_s = 8.0\n')
    hub, note = prefer_stored(loaded, opts)
    assert hub.config.rules.loitering.threshold_s == 8.0
    assert hub.config.site.unit_id == "u7"  # the same overrides
    assert hub.base_dir == site.parent  # relative paths still start at the installed config
    assert str(stored) in note
    stored.write_text("[rules.loitering]\nthreshold_s = -1\n")  # a stored config gone bad
    kept, note = prefer_stored(loaded, opts)
    assert kept is loaded and "not used" in note and "threshold_s" in note
