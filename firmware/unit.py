"""Builds a whole unit (every stage, the hub link, hub commands) from its config and the
`vigil run` options."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from firmware import __version__
from firmware.builder import BuildContext, Opened, build_live, stored_config_path
from firmware.clock import SourceClock
from firmware.config import ConfigError, LoadedConfig, parse_text
from firmware.deter.pins import resolve_pin_factory
from firmware.events.bus import Stamper
from firmware.events.sinks import JsonLinesSink
from firmware.loop import FrameLoop, LoopResult, Stages
from firmware.paths import MODELS_DIR
from firmware.sources import FrameReader, open_source_factory

if TYPE_CHECKING:
    from firmware.control import LoopControl
    from firmware.link import Link

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
    pin_factory: Any = None  # gpiozero pin factory; None = the board's (firmware.deter.pins)
    watchdog: bool = True


@dataclass
class Unit:
    loaded: LoadedConfig
    loop: FrameLoop
    birth: dict[str, Any]
    data_dir: Path
    link: Link | None = None
    control: LoopControl | None = None
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


def prefer_stored(loaded: LoadedConfig, opts: RunOptions) -> tuple[LoadedConfig, str | None]:
    """The config the hub last set (kept in the state directory by a ``config/set``) in
    place of ``loaded``, with the same overrides; a note saying so, or why it was not used.
    Relative paths in it still start from the --config file's folder."""
    stored = stored_config_path(data_dir(loaded)[0])
    if not stored.is_file():
        return loaded, None
    try:
        text = stored.read_text(encoding="utf-8")
        cfg = parse_text(text, str(stored))
    except (OSError, UnicodeDecodeError, ConfigError) as e:
        log.warning("config from the hub at %s not used: %s", stored, e)
        return loaded, f"config from the hub at {stored} not used ({e}); running {loaded.path}"
    hub = apply_overrides(LoadedConfig(cfg, loaded.path, text), opts)
    return (
        hub,
        f"running the config the hub set, stored at {stored} (remove it to use {loaded.path})",
    )


def build_unit(loaded: LoadedConfig, opts: RunOptions, status_out: TextIO | None = None) -> Unit:
    """Every stage of the unit, ready to run. Raises ValueError/OSError with a one-line
    message for bad input (missing or corrupt model, unreadable clip, unwritable folder);
    whatever fails, everything opened so far is released first."""
    with Opened() as opened:
        return _build(loaded, opts, status_out, opened)


def _build(
    loaded: LoadedConfig, opts: RunOptions, status_out: TextIO | None, opened: Opened
) -> Unit:
    from firmware.detect import load_detector

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
    opened.keep(reader, reader.stop)
    reader.start()  # fails here, clearly, for a missing or unreadable clip
    fps, size = reader.fps, reader.frame_size
    clock = SourceClock()
    ctx = BuildContext(
        fps=fps,
        frame_size=size,
        pin_factory=opts.pin_factory if opts.pin_factory is not None else resolve_pin_factory(),
        clock=clock.now,
        anonymise=bool(cfg.recording.enabled or opts.preview),
    )
    live = build_live(loaded, ctx, opened)
    stages = Stages(
        reader=reader,
        detector=detector,
        tracker=live.tracker,
        engine=live.engine,
        deterrents=live.deterrents,
        anonymiser=live.anonymiser,
        every_nth_frame=cfg.detector.every_nth_frame,
        score_threshold=cfg.detector.score_threshold,
        mask_score_threshold=live.mask_score_threshold,
        static_masks_before_inference=live.static_masks_before_inference,
    )
    if cfg.camera.floor is not None:  # events carry their tracks' floor positions
        from firmware.floor import EventFloor, floor_map

        stages.floor = EventFloor(floor_map(cfg.camera.floor))
    if cfg.inputs or cfg.till is not None:
        from firmware.inputs.hub import StoreInputs

        secret = None
        if cfg.till is not None:
            secret = (
                loaded.resolve(cfg.till.secret_file)
                if cfg.till.secret_file
                else ddir / "till-secret"
            )
        stages.inputs = opened.keep(
            StoreInputs(cfg.inputs, cfg.till, secret_path=secret, pin_factory=ctx.pin_factory)
        )
    if opts.events_out:
        stages.sinks.append(opened.keep(JsonLinesSink(opts.events_out)))
    model_info = {"name": detector.name, "sha256": detector.sha256, "backend": detector.backend}
    rec = None
    if cfg.recording.enabled:
        from firmware.recording import IncidentRecorder

        rec = opened.keep(
            IncidentRecorder(
                cfg.recording,
                data_dir=ddir,
                fps=fps,
                frame_size=size,
                model_info=model_info,
                key_path=loaded.resolve(cfg.recording.key_file),
                unit=cfg.site.unit_id,
            )
        )
        if rec.available:
            stages.recorder = rec
            stages.escrow = _escrow(cfg, loaded, ddir, fps, opened)
    if opts.preview:
        from firmware.preview import PreviewWriter

        stages.preview = opened.keep(PreviewWriter(opts.preview, fps, cfg.zones, cfg.lines))
    if opts.watchdog:
        from firmware.service import Watchdog

        stages.watchdog = Watchdog()
    birth = {
        "firmware": __version__,
        "models": [model_info],
        "config_hash": loaded.hash,
        "capabilities": ["events", "metrics"]
        + (["deterrents"] if stages.deterrents is not None else [])
        + (["recording"] if stages.recorder is not None else [])
        + (["inputs"] if stages.inputs is not None else []),
        "source": reader.name,
    }
    link = None
    if cfg.link.mqtt:
        from firmware.link import Link

        link = Link(
            cfg.link,
            site=cfg.site.site_id,
            unit=cfg.site.unit_id,
            data_dir=ddir,
            birth=birth,
            config_dir=loaded.base_dir,
        )
        opened.keep(link, lambda: link.stop(clean=False))
        stamper = link.stamper
    else:
        stamper = Stamper(cfg.site.unit_id, cfg.site.site_id, local_session(ddir))
    loop = FrameLoop(
        stages,
        status_out=status_out,
        max_frames=opts.max_frames,
        stamper=stamper,
        clock=clock,
        metrics_interval_s=cfg.link.metrics_interval_s,
    )
    unit = Unit(loaded, loop, birth, ddir)
    from firmware.diag import UnitProbe

    stages.probe = UnitProbe(
        cfg,
        config_path=loaded.path,
        deterrents=stages.deterrents,
        live=True,  # fed by this running loop (not the standalone console)
        detector_factory=lambda: load_detector(cfg.detector, models_dir=opts.models_dir),
        pin_factory=ctx.pin_factory,
    )
    stages.probe.source = reader.name
    if stages.recorder is None and rec is not None:
        unit.notes.append(f"incident recording off: {rec.error}")
    if link is not None:
        from firmware.control import LoopControl

        unit.control = LoopControl(loop, loaded, birth, ddir, ctx)
        link.attach_control(unit.control)
        unit.control.link = link
        unit.link = stages.link = stages.probe.link = link
        stages.tracks_out = _tracks_publisher(link, cfg)
        if link.outbox.problem:
            storage = f"{link.outbox.problem}: {link.outbox.detail}"
    if storage:
        unit.notes.append(storage)
        loop.report(storage.split(":", 1)[0], storage)
    return unit


def _escrow(cfg, loaded: LoadedConfig, ddir: Path, fps: float, opened: Opened):
    """The escrow sealer when enabled; a missing or bad public key is refused at start."""
    esc = cfg.recording.escrow
    if not esc.enabled:
        return None
    from firmware.recording.escrow import EscrowSealer, load_public_key

    pub = load_public_key(loaded.resolve(esc.public_key))  # RecordingKeyError is a ValueError
    rec = cfg.recording
    return opened.keep(EscrowSealer(esc, ddir, pub, fps, rec.pre_event_s, rec.max_clip_s))


def local_session(ddir: Path) -> int:
    """A session number for a unit without a hub link (kept in the data folder, +1 per
    start), so ``--events-out`` lines are numbered as the hub would see them."""
    path = ddir / "session"
    try:
        n = int(path.read_text().strip() or 0) + 1
    except (OSError, ValueError):
        n = 1
    try:
        tmp = path.with_suffix(".new")
        tmp.write_text(f"{n}\n")
        os.replace(tmp, path)
    except OSError as e:
        log.warning("session number not kept in %s: %s", ddir, e)
    return n


def fail(message: str) -> int:
    """Print a one-line error for the user and return the exit status."""
    print(f"vigil: error: {message}", file=sys.stderr)
    return 2


def _tracks_publisher(link, cfg):
    """The tracks topic at ``[link] tracks_hz``, on the floor when ``[camera.floor]`` is set."""
    from firmware.floor import floor_map
    from firmware.link.tracks import TracksPublisher

    floor = floor_map(cfg.camera.floor) if cfg.camera.floor is not None else None
    return TracksPublisher(link, cfg.link.tracks_hz, floor)
