"""The unit's side of hub commands (firmware.link.control.UnitControl) for a running loop.

Commands arrive on the link's thread; every change to a stage runs on the frame loop's
thread (``FrameLoop.submit``) so no stage is ever touched by two threads at once.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.config import LoadedConfig, parse_text
from firmware.loop import FrameLoop

log = logging.getLogger(__name__)
COMMAND_TIMEOUT_S = 10.0


class LoopControl:
    def __init__(
        self,
        loop: FrameLoop,
        loaded: LoadedConfig,
        birth: dict[str, Any],
        data_dir: Path,
        pin_factory=None,
    ):
        self.loop = loop
        self.pin_factory = pin_factory
        self.loaded = loaded
        self.birth = birth
        self.data_dir = data_dir
        self.link = None  # set once the link exists (it needs this object first)

    # -- plumbing --------------------------------------------------------------------------
    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the frame loop's thread and return its result (or raise its error)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def job() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                fut.set_exception(e)

        self.loop.submit(job)
        try:
            return fut.result(timeout=COMMAND_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise RuntimeError(
                f"the frame loop did not take the command within {COMMAND_TIMEOUT_S:g} s"
            ) from None

    def _zone(self, zone: str | None) -> None:
        if zone is not None and zone not in {z.name for z in self.loaded.config.zones}:
            raise KeyError(f"unknown zone {zone!r}")

    # -- UnitControl -----------------------------------------------------------------------
    def arm(self, zone: str | None = None) -> None:
        self._zone(zone)
        self._on_loop(lambda: self.loop.s.engine.set_armed(zone, True))

    def disarm(self, zone: str | None = None) -> None:
        self._zone(zone)
        self._on_loop(lambda: self.loop.s.engine.set_armed(zone, False))

    def config_text(self) -> str:
        return self.loaded.text

    def apply_config(self, text: str) -> dict[str, Any]:
        """Swap in a new config atomically: new rules and deterrents are built first; on any
        failure the running ones stay. Sections that need a restart are reported."""
        new_cfg = parse_text(text, "config/set")
        old = self.loaded

        def swap() -> dict[str, Any]:
            from firmware.deter import DeterrentController
            from firmware.rules import RuleEngine

            s = self.loop.s
            engine = RuleEngine(new_cfg, frame_size=s.reader.frame_size, fps=s.reader.fps)
            old_deter = s.deterrents
            if old_deter is not None:
                old_deter.close()  # frees the pins for the new outputs
            try:
                deter = DeterrentController(new_cfg, pin_factory=self.pin_factory)
            except Exception:
                if old_deter is not None:
                    s.deterrents = DeterrentController(old.config, pin_factory=self.pin_factory)
                raise
            # end the old engine's open situations so the hub sees every situation end
            self.loop.emit(list(s.engine.close(self.loop.now(), self.loop.metrics.frames)))
            s.engine, s.deterrents = engine, deter
            return {}

        self._on_loop(swap)
        self.loaded = LoadedConfig(new_cfg, old.path, text)
        self._persist(text)
        restart = [
            section
            for section in ("camera", "detector", "link", "storage", "recording")
            if getattr(new_cfg, section) != getattr(old.config, section)
        ]
        self.birth["config_hash"] = hashlib.sha256(text.encode()).hexdigest()
        if self.link is not None:
            self.link.update_birth(config_hash=self.birth["config_hash"])
        return {
            "applied": ["zones", "lines", "rules", "schedule", "deterrents"],
            "restart_required": restart,
        }

    def _persist(self, text: str) -> None:
        """Write the accepted config over the unit's config file (keeping a .bak), atomically."""
        path = self.loaded.path
        if path is None or not os.access(path.parent, os.W_OK):
            log.warning("config applied in memory only: %s is not writable", path)
            return
        tmp = path.with_suffix(path.suffix + ".new")
        tmp.write_text(text, encoding="utf-8")
        if path.exists():
            shutil.copy2(path, path.with_suffix(path.suffix + ".bak"))
        os.replace(tmp, path)

    def deterrent_test(self, name: str | None, seconds: float) -> dict[str, Any]:
        def test() -> dict[str, Any]:
            deter = self.loop.s.deterrents
            if deter is None:
                raise KeyError("no deterrents are configured")
            names = [name] if name is not None else list(deter.outputs)
            for n in names:
                if n not in deter.outputs:
                    raise KeyError(f"unknown deterrent {n!r}")
            for n in names:
                self.loop.emit(deter.test(n, self.loop.now(), on_s=seconds))
            return {"tested": names, "seconds": seconds}

        return self._on_loop(test)

    def mute(self, minutes: float) -> dict[str, Any]:
        def mute() -> dict[str, Any]:
            deter = self.loop.s.deterrents
            if deter is None:
                raise KeyError("no deterrents are configured")
            self.loop.emit(deter.mute(minutes, self.loop.now()))
            return {"until": time.time() + minutes * 60.0, "minutes": minutes}

        return self._on_loop(mute)

    def diagnostics(
        self, cmd: str = "status", args: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """`vigil-diag` commands over the hub link (never a snapshot: no images leave)."""
        s = self.loop.s
        if s.probe is not None:
            from firmware.diag import Diagnostics

            result = Diagnostics(s.probe).handle_network(cmd, args)
            if cmd == "status":
                result["loop"] = self._loop_facts()
            return result
        return self._loop_facts()

    def _loop_facts(self) -> dict[str, Any]:
        s = self.loop.s
        usage = shutil.disk_usage(self.data_dir)
        return {
            "metrics": self.loop.metrics.snapshot(),
            "camera": {
                "source": s.reader.name,
                "fps": s.reader.fps,
                "reopens": s.reader.reopens,
                "ended": s.reader.ended,
            },
            "model": {
                "name": s.detector.name,
                "backend": s.detector.backend,
                "sha256": s.detector.sha256,
            },
            "inference_failing": self.loop.inference_failing,
            "tracks": len(self.loop.tracks),
            "events": dict(self.loop.event_counts),
            "storage": {"data_dir": str(self.data_dir), "free_mb": round(usage.free / 2**20, 1)},
            "recording": None
            if s.recorder is None
            else {"available": s.recorder.available, "error": s.recorder.error},
        }

    def rebirth(self) -> dict[str, Any]:
        return dict(self.birth)

    def _store(self, max_age_days: float | None = None):
        from firmware.recording.store import IncidentStore

        rc = self.loaded.config.recording
        return IncidentStore(self.data_dir, max_age_days or rc.max_age_days, rc.quota_mb)

    def retention_purge(self, older_than_days: float | None) -> dict[str, Any]:
        gone = self._store(older_than_days).enforce_retention()
        return {"deleted": len(gone), "ids": gone}

    def legal_hold(self, incident_id: str, hold: bool) -> dict[str, Any]:
        from firmware.recording.store import IncidentError

        try:
            info = self._store().set_hold(
                incident_id, hold, actor="hub", reason="hub command" if hold else ""
            )
        except IncidentError as e:
            if "not found" in str(e) or "unknown" in str(e):
                raise KeyError(str(e)) from None
            raise ValueError(str(e)) from None
        return {"incident_id": info.id, "held": info.held}
