"""The unit's side of hub commands (firmware.link.control.UnitControl) for a running loop.

Commands arrive on the link's thread; every change to a stage runs on the frame loop's
thread (``FrameLoop.submit``) so no stage is ever touched by two threads at once.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.builder import (
    BuildContext,
    Opened,
    build_deterrents,
    build_live,
    changed_sections,
    stored_config_path,
)
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
        ctx: BuildContext,
    ):
        self.loop = loop
        self.ctx = ctx
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
        """Swap in a new config: the live sections' stages are built first (on the loop's
        thread); on any failure they are released and the running ones stay. Sections that
        need a restart are stored and listed. The accepted text is kept in the state
        directory, which the next start prefers."""
        new_cfg = parse_text(text, "config/set")
        old = self.loaded
        new = LoadedConfig(new_cfg, old.path, text)
        applied, restart = changed_sections(old.config, new_cfg)

        def swap() -> None:
            s, now = self.loop.s, self.loop.now
            with Opened() as opened:
                live = build_live(new, self.ctx, opened, deterrents=False)  # nothing touched yet
                # End the old rules' open situations through the bus: the recorder closes
                # their clips on time, the hub sees every situation end, and the old
                # deterrent controller ends their escalations.
                self.loop.emit(s.engine.close(now(), self.loop.metrics.frames))
                old_deter = s.deterrents
                if old_deter is not None:
                    self.loop.emit(old_deter.tick(now()))
                    old_deter.close()  # frees its GPIO pins for the new controller
                try:
                    live.deterrents = build_deterrents(new, self.ctx, opened)
                except Exception:
                    if old_deter is not None:  # back as it was, on the same pins
                        s.deterrents = build_deterrents(old, self.ctx, Opened())
                        self._attach(old.config, s.deterrents)
                    raise
            s.tracker, s.engine, s.deterrents = live.tracker, live.engine, live.deterrents
            s.anonymiser = live.anonymiser
            s.mask_score_threshold = live.mask_score_threshold
            s.static_masks_before_inference = live.static_masks_before_inference
            self._attach(new_cfg, live.deterrents)

        self._on_loop(swap)
        self.loaded = new
        saved, note = self._persist(text)
        self.birth["config_hash"] = new.hash
        if self.link is not None:
            self.link.update_birth(config_hash=new.hash)
        out: dict[str, Any] = {"applied": applied, "restart_required": restart, "saved": saved}
        if note:
            out["note"] = note
        return out

    def _attach(self, cfg: Any, deterrents: Any) -> None:
        """Diagnostics (vigil-diag status, outputs, mute, test-output) follow the new stages."""
        if self.loop.s.probe is not None:
            self.loop.s.probe.attach(cfg, deterrents)

    def _persist(self, text: str) -> tuple[str | None, str | None]:
        """Keep the accepted config in the state directory (atomically, the previous one as
        .bak); (where, None) or (None, why not)."""
        path = stored_config_path(self.data_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".new")
            tmp.write_text(text, encoding="utf-8")
            if path.exists():
                os.replace(path, path.with_suffix(".bak"))
            os.replace(tmp, path)
        except OSError as e:
            log.error("config applied but not stored at %s: %s", path, e)
            return None, f"applied in memory only: {path} not writable ({e.strerror})"
        return str(path), None

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
