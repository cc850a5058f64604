"""Builds a whole unit (every stage, the hub link, hub commands) from its config and the
`vigil run` options."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from firmware import __version__
from firmware.config import LoadedConfig
from firmware.events.sinks import JsonLinesSink
from firmware.loop import FrameLoop, LoopResult, Stages
from firmware.paths import MODELS_DIR
from firmware.sources import FrameReader, open_source_factory

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What `vigil run` can override; None keeps the config's value."""

    source: str | None = None
    fast: bool = False
    loop: bool = False
    events_out: str | None = None
    preview: str | None = None
    mqtt: str | None = None  # URL, or "none" for no link
    unit: str | None = None
    site: str | None = None
    data_dir: str | None = None
    models_dir: Path = MODELS_DIR
    max_frames: int | None = None
    pin_factory: Any = None  # gpiozero pin factory; None = the board's, or mock pins off a Pi
    watchdog: bool = True


@dataclass
class Unit:
    loaded: LoadedConfig
    loop: FrameLoop
    birth: dict[str, Any]
    data_dir: Path
    link: Any = None
    control: Any = None
    notes: list[str] = field(default_factory=list)
    diag_socket: str | None = None  # serve diagnostics here for the serial console

    def run(self) -> LoopResult:
        """Start the link and the diagnostics socket, run the loop to its end, stop cleanly."""
        probe = self.loop.s.probe
        server = None
        if probe is not None:
            probe.install_log_handler()
            server = self._diag_server(probe)
        if self.link is not None:
            self.link.start()
        try:
            return self.loop.run()
        finally:
            if self.link is not None:
                self.link.stop(clean=True)
            if server is not None:
                server.stop()
            if probe is not None:
                probe.remove_log_handler()

    def _diag_server(self, probe):
        """The local socket `vigil console` forwards to: only where its folder exists and is
        writable (systemd's RuntimeDirectory=vigil), so development runs leave nothing behind."""
        from firmware.console.server import DEFAULT_SOCKET, LocalServer
        from firmware.diag import Diagnostics

        path = Path(self.diag_socket or DEFAULT_SOCKET)
        if self.diag_socket is None and not os.access(path.parent, os.W_OK):
            log.debug("diagnostics socket off: %s not writable", path.parent)
            return None
        try:
            return LocalServer(path, Diagnostics(probe).handle).start()
        except OSError as e:
            log.warning("diagnostics socket %s unavailable: %s", path, e)
            return None


def apply_overrides(loaded: LoadedConfig, opts: RunOptions) -> LoadedConfig:
    """The config with command-line overrides applied (validated again)."""
    cfg = loaded.config.model_copy(deep=True)
    if opts.unit:
        cfg.site.unit_id = opts.unit
    if opts.site:
        cfg.site.site_id = opts.site
    if opts.data_dir:
        cfg.storage.data_dir = opts.data_dir
    if opts.mqtt is not None:
        cfg.link.mqtt = None if opts.mqtt.lower() in ("", "none", "off") else opts.mqtt
    cfg = type(cfg).model_validate(cfg.model_dump())
    return LoadedConfig(cfg, loaded.path, loaded.text)


def data_dir(loaded: LoadedConfig) -> tuple[Path, str | None]:
    """The unit's data folder, created if needed, and what is wrong with it (None: writable).
    Never raises: a unit with a full or broken data folder still detects, deters and reports."""
    d = (
        loaded.resolve(loaded.config.storage.data_dir)
        if loaded.path
        else Path(loaded.config.storage.data_dir)
    )
    d = d.expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".write-test"
        probe.write_bytes(b"\0" * 4096)
        probe.unlink()
    except OSError as e:
        from firmware.link.outbox import storage_problem

        problem = storage_problem(d / "x") if d.is_dir() else "storage_failed"
        log.error("storage.data_dir %s: not writable (%s)", d, e.strerror)
        return d, f"{problem}: storage.data_dir {d} is not writable ({e.strerror})"
    return d, None


def pin_factory_for(opts: RunOptions):
    """The board's GPIO, or gpiozero's mock pins (logged) on a machine without GPIO."""
    if opts.pin_factory is not None:
        return opts.pin_factory
    import warnings

    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gpiozero warns for each library it falls back from
            if Device.pin_factory is None:
                Device.pin_factory = Device._default_pin_factory()
        return None
    except (BadPinFactory, ImportError, OSError, RuntimeError):
        from gpiozero.pins.mock import MockFactory

        log.warning("no GPIO on this machine: deterrent outputs are simulated (gpiozero mock pins)")
        return MockFactory()


def build_unit(loaded: LoadedConfig, opts: RunOptions, status_out: TextIO | None = None) -> Unit:
    """Every stage of the unit, ready to run. Raises ValueError/OSError with a one-line
    message for bad input (missing or corrupt model, unreadable clip, unwritable folder)."""
    from firmware.detect import load_detector
    from firmware.rules import RuleEngine
    from firmware.track import Tracker

    cfg = loaded.config
    ddir, storage = data_dir(loaded)
    if opts.source:
        source_spec = opts.source
    elif cfg.camera.source in ("picamera2", "camera"):
        source_spec = cfg.camera.source
    else:
        source_spec = str(loaded.resolve(cfg.camera.source))
    reader = FrameReader(
        open_source_factory(source_spec, cfg.camera),
        paced=not opts.fast,
        loop=opts.loop,
        stall_timeout_s=cfg.camera.stall_timeout_s,
        backoff_s=cfg.camera.reopen_backoff_s,
    )
    detector = load_detector(cfg.detector, models_dir=opts.models_dir)
    reader.start()  # fails here, clearly, for a missing or unreadable clip
    fps, size = reader.fps, reader.frame_size
    stages = Stages(
        reader=reader,
        detector=detector,
        tracker=Tracker(cfg.tracker, fps=fps),
        engine=RuleEngine(cfg, frame_size=size, fps=fps),
        every_nth_frame=cfg.detector.every_nth_frame,
        score_threshold=cfg.detector.score_threshold,
        mask_score_threshold=cfg.privacy.min_score,
        static_masks_before_inference=cfg.privacy.static_masks_before_inference,
    )
    pins = pin_factory_for(opts)
    if cfg.deterrents:
        from firmware.deter import DeterrentController

        stages.deterrents = DeterrentController(
            cfg, pin_factory=pins, base_dir=loaded.path.parent if loaded.path else None
        )
    if opts.events_out:
        stages.sinks.append(JsonLinesSink(opts.events_out))
    model_info = {"name": detector.name, "sha256": detector.sha256, "backend": detector.backend}
    if cfg.recording.enabled or opts.preview:
        from firmware.privacy import Anonymiser

        stages.anonymiser = Anonymiser(cfg.privacy)
    if cfg.recording.enabled:
        from firmware.recording import IncidentRecorder

        rec = IncidentRecorder(
            cfg.recording,
            data_dir=ddir,
            fps=fps,
            frame_size=size,
            model_info=model_info,
            key_path=loaded.resolve(cfg.recording.key_file),
            unit=cfg.site.unit_id,
        )
        if rec.available:
            stages.recorder = rec
        else:
            rec.close()
    if opts.preview:
        from firmware.preview import PreviewWriter

        stages.preview = PreviewWriter(opts.preview, fps, cfg.zones, cfg.lines)
    if opts.watchdog:
        from firmware.service import Watchdog

        stages.watchdog = Watchdog()
    birth = {
        "firmware": __version__,
        "models": [model_info],
        "config_hash": hashlib.sha256(loaded.text.encode()).hexdigest(),
        "capabilities": ["events", "metrics"]
        + (["deterrents"] if stages.deterrents is not None else [])
        + (["recording"] if stages.recorder is not None else []),
        "source": reader.name,
    }
    loop = FrameLoop(stages, status_out=status_out, max_frames=opts.max_frames)
    unit = Unit(loaded, loop, birth, ddir)
    from firmware.diag import UnitProbe

    stages.probe = UnitProbe(
        cfg,
        config_path=loaded.path,
        deterrents=stages.deterrents,
        live=True,  # fed by this running loop (not the standalone console)
        detector_factory=lambda: load_detector(cfg.detector, models_dir=opts.models_dir),
    )
    stages.probe.source = reader.name
    if stages.recorder is None and cfg.recording.enabled:
        unit.notes.append(f"incident recording off: {rec.error}")
    if cfg.link.mqtt:
        from firmware.control import LoopControl
        from firmware.link import Link

        unit.control = LoopControl(loop, loaded, birth, ddir, pin_factory=pins)
        unit.link = Link(
            cfg.link,
            site=cfg.site.site_id,
            unit=cfg.site.unit_id,
            data_dir=ddir,
            birth=birth,
            control=unit.control,
            config_dir=loaded.path.parent if loaded.path else None,
        )
        unit.control.link = unit.link
        stages.link = unit.link
        stages.probe.link = unit.link
        if unit.link.outbox.problem:
            storage = f"{unit.link.outbox.problem}: {unit.link.outbox.detail}"
    if storage:
        unit.notes.append(storage)
        loop.report(storage.split(":", 1)[0], storage)
    return unit


def fail(message: str) -> int:
    """Print a one-line error for the user and return the exit status."""
    print(f"vigil: error: {message}", file=sys.stderr)
    return 2
