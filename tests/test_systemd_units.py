"""The systemd units: required settings, `systemd-analyze verify`, exposure score, tmpfiles/sysusers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware.config.schema import StorageConfig

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
ANALYZE = shutil.which("systemd-analyze")
UNITS = ("vigil.service", "vigil-console.service", "vigil-hub.service")


def settings(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_main_unit_is_notify_with_watchdog_unprivileged_and_hardened():
    s = settings("vigil.service")
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert int(s["WatchdogSec"][0]) >= 10 and s["Restart"] == ["always"]
    assert s["User"] == ["vigil"] and {"gpio", "video"} <= set(s["SupplementaryGroups"][0].split())
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert StorageConfig().data_dir in s["ReadWritePaths"][0].split()
    assert s["CapabilityBoundingSet"] == [""]
    assert any(v.startswith("@system-service") for v in s["SystemCallFilter"])
    assert "/etc/vigil/site.toml" in s["ExecStart"][0]


def test_console_unit_runs_vigil_console_on_the_uart():
    s = settings("vigil-console.service")
    assert "vigil console --port /dev/serial0" in s["ExecStart"][0]
    assert "dialout" in s["SupplementaryGroups"][0].split() and s["User"] == ["vigil"]


def test_hub_unit_serves_from_its_state_dir_unprivileged_and_hardened():
    s = settings("vigil-hub.service")
    assert "vigil-hub serve" in s["ExecStart"][0]
    assert "--db /var/lib/vigil-hub/hub.sqlite" in s["ExecStart"][0]
    assert s["User"] == ["vigil-hub"] and s["Restart"] == ["always"]
    assert s["StateDirectory"] == ["vigil-hub"] and s["ReadWritePaths"] == ["/var/lib/vigil-hub"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"] and s["CapabilityBoundingSet"] == [""]
    users = (SYSTEMD / "vigil-hub.sysusers").read_text()
    assert re.search(r"^u vigil-hub - .* /var/lib/vigil-hub /usr/sbin/nologin$", users, re.M)


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    """A root with the host's systemd units plus ours and a stand-in /opt/vigil binary."""
    if ANALYZE is None or not Path("/usr/lib/systemd/system").is_dir():
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    root = tmp_path_factory.mktemp("root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "lib").symlink_to("usr/lib")
    (root / "etc/systemd/system").mkdir(parents=True)
    for u in UNITS:
        shutil.copy(SYSTEMD / u, root / "etc/systemd/system" / u)
    for name in ("vigil", "vigil-hub"):
        exe = root / "opt/vigil/.venv/bin" / name
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return root


def test_systemd_analyze_verify_is_clean(fake_root):
    r = subprocess.run(
        [ANALYZE, "verify", f"--root={fake_root}", *UNITS],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ours = [ln for ln in (r.stdout + r.stderr).splitlines() if "vigil" in ln]
    assert r.returncode == 0 and ours == [], r.stdout + r.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_at_most_3(fake_root, unit):
    r = subprocess.run(
        [ANALYZE, "security", "--offline=true", f"--root={fake_root}", "--no-pager", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 3.0


def test_tmpfiles_and_sysusers_create_the_user_and_data_dirs(tmp_path):
    sysusers, tmpfiles = shutil.which("systemd-sysusers"), shutil.which("systemd-tmpfiles")
    if not (sysusers and tmpfiles):
        pytest.skip("systemd-sysusers/systemd-tmpfiles not installed")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\n")
    for kind, src in (("sysusers.d", "vigil.sysusers"), ("tmpfiles.d", "vigil.tmpfiles")):
        d = tmp_path / "usr/lib" / kind
        d.mkdir(parents=True)
        shutil.copy(SYSTEMD / src, d / "vigil.conf")
    r = subprocess.run(
        [sysusers, f"--root={tmp_path}", "vigil.conf"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    assert re.search(r"^vigil:x:\d+:\d+:.*:/usr/sbin/nologin$", passwd, re.M)
    assert re.search(r"^gpio:x:\d+:vigil$", (tmp_path / "etc/group").read_text(), re.M)
    r = subprocess.run(
        [tmpfiles, f"--root={tmp_path}", "--create", "vigil.conf"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    data = tmp_path / "var/lib/vigil"
    assert (data / "outbox").is_dir() and (data / "incidents").is_dir()
    assert data.stat().st_mode & 0o777 == 0o750


def test_install_script_parses_and_refuses_bad_options():
    script = Path(__file__).resolve().parents[1] / "tools" / "install-pi.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    r = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr
    r = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--board pi4|pi5|cm4" in r.stdout
    text = script.read_text()
    for unit in ("vigil.service", "vigil-console.service", "vigil.tmpfiles", "vigil.sysusers"):
        assert f"systemd/{unit}" in text and (SYSTEMD / unit).is_file()
