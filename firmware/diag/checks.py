"""Self-test checks: each says pass/fail, what it measured, and how to fix a failure.

Transport-agnostic: ``run_selftest(probe)`` returns plain dicts ``{name, ok, detail, hint}``
(plus ``value`` where there is a figure) for the console, the hub link and `vigil-diag`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from firmware.diag.probe import UnitProbe

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

CORAL_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}
MIN_FREE_BYTES = 512 * 1024**2


def _check(name: str, ok: bool, detail: str, hint: str = "", value: Any = None) -> dict[str, Any]:
    out = {"name": name, "ok": bool(ok), "detail": detail, "hint": "" if ok else hint}
    if value is not None:
        out["value"] = value
    return out


def check_frames(probe: UnitProbe, wait_s: float = 3.0) -> dict[str, Any]:
    cam = probe.cfg.camera
    if not probe.live:
        return _check(
            "frames",
            False,
            "the unit's service is not running: no frames",
            "systemctl status vigil; journalctl -u vigil -n 50 (then vigil-diag logs)",
        )
    got = probe.wait_for_frames(3, wait_s)
    st = probe.stats()
    if not got:
        age = st["last_frame_age_s"]
        return _check(
            "frames",
            False,
            "no frame yet" if age is None else f"no new frame for {age:.1f} s",
            "camera: reseat the ribbon cable, run `rpicam-hello --list-cameras`; clip: check the --source path",
        )
    fps = st["fps"]
    floor = min(2.0, 0.25 * cam.fps)
    return _check(
        "frames",
        fps >= floor,
        f"{st['frames']} frames, {fps:.1f} fps",
        f"below {floor:.1f} fps: run `vigil-diag bench`; enable the Edge TPU or detector.every_nth_frame",
        value=fps,
    )


def check_model(probe: UnitProbe, runs: int = 3) -> dict[str, Any]:
    """Load the configured model afresh (never the loop's interpreter) and time inference."""
    import numpy as np

    name = probe.cfg.detector.model
    try:
        det = _load_detector(probe)
    except Exception as e:
        return _check(
            "model",
            False,
            f"model {name!r} does not load: {e}",
            "check detector.model against models/manifest.toml; reinstall the model file (sha256 must match)",
        )
    last = probe.last_frame()
    image = last.image if last is not None else np.zeros((360, 640, 3), np.uint8)
    times = []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            det.detect(image)
            times.append(
                getattr(det, "last_timings", {}).get("inference")
                or (time.perf_counter() - t0) * 1e3
            )
    except Exception as e:
        return _check(
            "model",
            False,
            f"inference failed: {e}",
            "reinstall the model; check the Edge TPU runtime",
        )
    ms = float(np.median(times))
    backend = getattr(det, "backend", "cpu")
    return _check(
        "model", True, f"{name} on {backend}: {ms:.1f} ms per inference", value=round(ms, 2)
    )


def _load_detector(probe: UnitProbe):
    if probe.detector_factory is not None:
        return probe.detector_factory()
    try:
        from firmware.detect import load_detector
    except ImportError as e:
        raise RuntimeError(f"the detector stage is not in this build ({e})") from None
    return load_detector(probe.cfg.detector)


def edgetpu_devices() -> list[str]:
    """Coral accelerators visible to this machine (USB ids or the PCIe apex device)."""
    found = [p for p in glob.glob("/dev/apex_*")]
    for dev in glob.glob("/sys/bus/usb/devices/*"):
        try:
            vid = Path(dev, "idVendor").read_text().strip()
            pid = Path(dev, "idProduct").read_text().strip()
        except OSError:
            continue
        if (vid, pid) in CORAL_USB_IDS:
            found.append(f"usb {vid}:{pid} ({os.path.basename(dev)})")
    return found


def check_edgetpu(probe: UnitProbe) -> dict[str, Any]:
    wanted = probe.cfg.detector.edgetpu
    devices = edgetpu_devices()
    lib = ctypes.util.find_library("edgetpu")
    detail = f"{', '.join(devices) or 'no device'}; runtime {'found' if lib else 'missing'}"
    if not wanted:
        return _check("edgetpu", True, f"not configured ({detail})", value=bool(devices and lib))
    ok = bool(devices) and lib is not None
    hint = (
        "plug the Coral into a USB 3 port / check the apex driver (ls /dev/apex_0)"
        if not devices
        else "install the runtime: apt-get install libedgetpu1-std"
    )
    return _check(
        "edgetpu", ok, detail, hint + " (the unit falls back to the CPU meanwhile)", value=ok
    )


def check_outputs(probe: UnitProbe, toggle: bool = True) -> list[dict[str, Any]]:
    """Pulse each output and read it back; audible outputs are the speaker test."""
    cfg = probe.cfg
    if not cfg.deterrents:
        return [_check("outputs", True, "no deterrent outputs configured")]
    if not toggle:
        return [_check("outputs", True, "not toggled (--no-outputs)")]
    ctrl, own = probe.deterrents, False
    if ctrl is None:
        from firmware.deter import DeterrentController
        from firmware.deter.pins import resolve_pin_factory

        try:
            pins = probe.pin_factory if probe.pin_factory is not None else resolve_pin_factory()
            ctrl, own = DeterrentController(cfg, pin_factory=pins, backstop=False), True
        except Exception as e:
            return [
                _check(
                    "outputs",
                    False,
                    f"cannot open the outputs: {e}",
                    "another program holds the pins: run the self-test through the running unit",
                )
            ]
    results = []
    try:
        for name, dcfg in cfg.deterrents.items():
            label = f"{'speaker' if dcfg.audible else 'output'}:{name}"
            r = ctrl.self_test(name)
            results.append(_check(label, r["ok"], f"{dcfg.kind} {r['detail']}", r["hint"]))
    finally:
        if own:
            ctrl.close()
    return results


def check_storage(probe: UnitProbe) -> dict[str, Any]:
    d = Path(probe.cfg.storage.data_dir)
    if not d.is_dir():
        return _check(
            "storage",
            False,
            f"{d} does not exist",
            "systemd-tmpfiles --create vigil.conf (or tools/install-pi.sh)",
        )
    try:
        with tempfile.NamedTemporaryFile(dir=d, prefix=".selftest-") as f:
            f.write(b"vigil")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return _check(
            "storage",
            False,
            f"{d} is not writable: {e}",
            f"chown -R vigil:vigil {d}; check the SD card is not read-only",
        )
    usage = shutil.disk_usage(d)
    free_pct = 100.0 * usage.free / usage.total if usage.total else 0.0
    ok = usage.free >= MIN_FREE_BYTES and free_pct >= 5.0
    return _check(
        "storage",
        ok,
        f"{d} writable, {usage.free / 1024**3:.1f} GiB free ({free_pct:.0f} %)",
        "free space: shorten recording retention or export and purge incidents",
        value=round(usage.free / 1024**3, 2),
    )


TIME_ERROR = 5


def clock_synchronised() -> tuple[bool | None, str]:
    """(synchronised, how): the kernel's NTP state via adjtimex, or systemd-timesyncd's flag."""
    if Path("/run/systemd/timesync/synchronized").exists():
        return True, "systemd-timesyncd synchronised"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None, "cannot read the kernel clock state"
    if state < 0:
        return None, "adjtimex failed"
    return (
        state != TIME_ERROR,
        f"kernel clock state {state} ({'unsynchronised' if state == TIME_ERROR else 'synchronised'})",
    )


def check_clock(probe: UnitProbe) -> dict[str, Any]:
    ok, how = clock_synchronised()
    return _check(
        "clock",
        bool(ok),
        f"{how}; now {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "enable NTP: timedatectl set-ntp true; check the network reaches an NTP server (quiet hours and event times depend on it)",
    )


def check_broker(probe: UnitProbe, timeout: float = 3.0) -> dict[str, Any]:
    url = probe.cfg.link.mqtt
    if not url:
        return _check("broker", True, "no link configured (link.mqtt is empty)")
    link = probe.link
    if link is not None and getattr(link, "connected", None) is True:
        return _check("broker", True, f"link connected to {url}")
    u = urlparse(url)
    host, port = u.hostname or "", u.port or (8883 if u.scheme == "mqtts" else 1883)
    t0 = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            if u.scheme == "mqtt":
                s.settimeout(timeout)
                s.sendall(_MQTT_CONNECT)
                ack = s.recv(4)
                if len(ack) < 4 or ack[0] != 0x20:
                    raise OSError("no MQTT CONNACK")
                if ack[3] not in (
                    0,
                    5,
                ):  # 5: not authorised: the broker is there, this probe has no login
                    raise OSError(f"CONNACK code {ack[3]}")
    except OSError as e:
        return _check(
            "broker",
            False,
            f"cannot reach {host}:{port}: {e}",
            "check the network and link.mqtt; the unit keeps events in its outbox until the broker is back",
        )
    ms = (time.perf_counter() - t0) * 1e3
    return _check("broker", True, f"{host}:{port} answers ({ms:.0f} ms)", value=round(ms, 1))


# MQTT 3.1.1 CONNECT, clean session, keepalive 10 s, client id "vigil-selftest"
_MQTT_CONNECT = bytes([0x10, 26, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 10, 0, 14]) + b"vigil-selftest"


def run_selftest(
    probe: UnitProbe, *, toggle_outputs: bool = True, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Every check, in order; a crashing check is itself reported as a failure."""
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("frames", lambda: check_frames(probe)),
        ("model", lambda: check_model(probe)),
        ("edgetpu", lambda: check_edgetpu(probe)),
        ("outputs", lambda: check_outputs(probe, toggle_outputs)),
        ("storage", lambda: check_storage(probe)),
        ("clock", lambda: check_clock(probe)),
        ("broker", lambda: check_broker(probe)),
    ]
    results: list[dict[str, Any]] = []
    for i, (name, fn) in enumerate(steps):
        if progress is not None:
            progress(i, len(steps), name)
        try:
            r = fn()
        except Exception as e:  # a check must not take the self-test down
            log.exception("self-test check %s crashed", name)
            r = _check(name, False, f"check crashed: {e}", "report this with `vigil-diag logs`")
        results.extend(r if isinstance(r, list) else [r])
    if progress is not None:
        progress(len(steps), len(steps), "done")
    return results
