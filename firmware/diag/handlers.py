"""Diagnostics commands, independent of how they arrive (serial console, unix socket, hub link).

``Diagnostics(probe).handle(cmd, args, progress)`` returns a plain dict (CBOR/JSON-able) or
raises ``DiagError`` with a message and a hint.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from firmware import __version__
from firmware.diag.checks import Progress, _load_detector, run_selftest
from firmware.diag.probe import UnitProbe

log = logging.getLogger(__name__)

COMMANDS = (
    "status",
    "selftest",
    "bench",
    "snapshot",
    "logs",
    "zones",
    "outputs",
    "test_output",
    "mute",
)


class DiagError(ValueError):
    """A command the unit cannot do; a ValueError so the hub link replies 'rejected' with it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class Diagnostics:
    """The commands `vigil-diag` sends; one instance per unit process."""

    def __init__(self, probe: UnitProbe) -> None:
        self.probe = probe
        self._detector = None

    def handle(
        self, cmd: str, args: dict[str, Any] | None = None, progress: Progress | None = None
    ) -> dict[str, Any]:
        fn: Callable[..., dict[str, Any]] | None = (
            getattr(self, f"cmd_{cmd}", None) if cmd in COMMANDS else None
        )
        if fn is None:
            raise DiagError(f"unknown command {cmd!r}", f"commands: {', '.join(COMMANDS)}")
        try:
            return fn(dict(args or {}), progress)
        except DiagError:
            raise
        except (TypeError, ValueError, KeyError) as e:
            raise DiagError(
                f"{cmd}: {e}", "check the command's arguments (vigil-diag COMMAND --help)"
            ) from None

    def handle_network(
        self, cmd: str = "status", args: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """For the hub link's ``diagnostics`` command: the same commands, never an image."""
        if cmd == "snapshot":
            raise DiagError(
                "snapshots are only served over the serial console",
                "vigil-diag --serial DEV snapshot",
            )
        return self.handle(cmd, args)

    # ---- commands ------------------------------------------------------------------
    def cmd_status(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        cfg, p = self.probe.cfg, self.probe
        out: dict[str, Any] = {
            "unit": cfg.site.unit_id,
            "site": cfg.site.site_id,
            "version": __version__,
            "board": getattr(cfg.site, "board", None),
            "time": time.time(),
            "model": cfg.detector.model,
            "edgetpu_configured": cfg.detector.edgetpu,
            **p.stats(),
        }
        if p.deterrents is not None:
            out["deterrents"] = p.deterrents.state(p.deterrents.now())
        link = p.link
        if link is not None:
            out["link"] = {
                "url": cfg.link.mqtt,
                "connected": bool(getattr(link, "connected", False)),
            }
        elif cfg.link.mqtt:
            out["link"] = {"url": cfg.link.mqtt, "connected": None}
        return out

    def cmd_selftest(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        checks = run_selftest(
            self.probe, toggle_outputs=bool(args.get("outputs", True)), progress=progress
        )
        return {"ok": all(c["ok"] for c in checks), "checks": checks}

    def cmd_bench(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        runs = int(args.get("runs", 20))
        if not 1 <= runs <= 500:
            raise ValueError("runs must be 1..500")
        if self._detector is None:
            try:
                self._detector = _load_detector(self.probe)
            except Exception as e:
                raise DiagError(
                    f"model does not load: {e}", "run `vigil-diag selftest` for details"
                ) from None
        det = self._detector
        last = self.probe.last_frame()
        image = last.image if last is not None else np.zeros((360, 640, 3), np.uint8)
        det.detect(image)  # warm-up
        total, inference = [], []
        for i in range(runs):
            if progress is not None and (i % 5 == 0):
                progress(i, runs, "inference")
            t0 = time.perf_counter()
            det.detect(image)
            total.append((time.perf_counter() - t0) * 1e3)
            inference.append(getattr(det, "last_timings", {}).get("inference", total[-1]))
        if progress is not None:
            progress(runs, runs, "done")
        tot = np.asarray(total)
        return {
            "model": self.probe.cfg.detector.model,
            "backend": getattr(det, "backend", "cpu"),
            "image": list(image.shape[1::-1]),
            "runs": runs,
            "detect_ms": {
                "mean": _r(tot.mean()),
                "p50": _r(np.percentile(tot, 50)),
                "p95": _r(np.percentile(tot, 95)),
            },
            "inference_ms": {
                "mean": _r(np.mean(inference)),
                "p50": _r(np.percentile(inference, 50)),
            },
            "detect_fps": _r(1000.0 / tot.mean()),
            "loop": self.probe.stats(),
        }

    def cmd_snapshot(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        from firmware.diag.snapshot import NoStoredFrame, snapshot_png

        last = self.probe.last_frame()
        if last is None:
            hint = (
                "the unit's service is not running"
                if not self.probe.live
                else "wait for the camera, then retry"
            )
            raise DiagError("no frame to snapshot yet", hint)
        if progress is not None:
            progress(0, 1, "rendering")
        try:
            png, info = snapshot_png(self.probe.cfg, last, int(args.get("max_width", 640)))
        except NoStoredFrame as e:
            raise DiagError(
                str(e), "enable [recording] with a key so frames are anonymised"
            ) from None
        return {"png": png, **info}

    def cmd_logs(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        n = int(args.get("lines", 50))
        level = str(args.get("level", "INFO")).upper()
        min_level = logging.getLevelName(level)
        if not isinstance(min_level, int):
            raise ValueError(f"unknown level {level!r} (DEBUG, INFO, WARNING, ERROR)")
        rows = self.probe.logs.tail(n, min_level)
        source = "unit"
        if not rows and not self.probe.live:
            rows, source = _journal(n, level), "journal"
        return {"source": source, "lines": rows}

    def cmd_zones(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        cfg = self.probe.cfg
        last = self.probe.last_frame()
        feet = np.zeros((0, 2), np.float32)
        if last is not None and last.tracks is not None and len(last.tracks):
            h, w = last.image.shape[:2]
            sw, sh = last.scale_from or (w, h)
            b = last.tracks.boxes
            feet = np.stack([(b[:, 0] + b[:, 2]) / 2 / sw, b[:, 3] / sh], axis=1)
        zones = []
        for z in cfg.zones:
            zones.append(
                {
                    "name": z.name,
                    "purpose": z.purpose,
                    "armed": z.armed,
                    "points": len(z.polygon),
                    "people": int(_inside(feet, np.asarray(z.polygon, np.float32)).sum()),
                    "polygon": [list(p) for p in z.polygon],
                }
            )
        lines = [
            {"name": ln.name, "purpose": ln.purpose, "points": [list(p) for p in ln.points]}
            for ln in cfg.lines
        ]
        return {"zones": zones, "lines": lines}

    def cmd_outputs(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        ctrl = self.probe.deterrents
        if ctrl is not None:
            return ctrl.state(ctrl.now())
        return {
            "outputs": {
                n: {"kind": d.kind, "pin": d.pin, "on": None}
                for n, d in self.probe.cfg.deterrents.items()
            }
        }

    def cmd_test_output(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        ctrl = self.probe.deterrents
        if ctrl is None:
            raise DiagError(
                "no running deterrent controller", "start the unit (systemctl start vigil)"
            )
        name = str(args["name"])
        if name not in ctrl.outputs:
            raise DiagError(
                f"no output named {name!r}", f"outputs: {', '.join(ctrl.outputs) or 'none'}"
            )
        return ctrl.self_test(name, pulse_s=min(float(args.get("seconds", 0.5)), 5.0))

    def cmd_mute(self, args: dict, progress: Progress | None) -> dict[str, Any]:
        ctrl = self.probe.deterrents
        if ctrl is None:
            raise DiagError(
                "no running deterrent controller", "start the unit (systemctl start vigil)"
            )
        minutes = float(args.get("minutes", ctrl.policy_cfg.mute_minutes))
        if not 0 <= minutes <= 1440:
            raise ValueError("minutes must be 0..1440")
        return {"muted": ctrl.mute_from(minutes, "diag"), "minutes": minutes}


def _r(v: float) -> float:
    return round(float(v), 2)


def _inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon for many points at once."""
    if len(pts) == 0:
        return np.zeros((0,), bool)
    x, y = pts[:, 0:1], pts[:, 1:2]
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = ((y1 > y) != (y2 > y)) & (
        x < (x2 - x1) * (y - y1) / np.where(y2 == y1, 1e-12, y2 - y1) + x1
    )
    return crosses.sum(axis=1) % 2 == 1


def _journal(n: int, level: str) -> list[dict[str, Any]]:
    """The service's journal when the unit is down (the console on its own)."""
    exe = shutil.which("journalctl")
    if exe is None:
        return []
    prio = {"DEBUG": "7", "INFO": "6", "WARNING": "4", "ERROR": "3", "CRITICAL": "2"}.get(
        level, "6"
    )
    try:
        r = subprocess.run(
            [exe, "-u", "vigil", "-n", str(n), "-p", prio, "--no-pager", "-o", "short-iso"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [
        {"time": None, "level": "", "logger": "journal", "message": ln}
        for ln in r.stdout.splitlines()
    ]
