"""Builds a unit's stages from its config and the `vigil run` options."""

from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from firmware import __version__
from firmware.config import LoadedConfig
from firmware.events.sinks import JsonLinesSink
from firmware.loop import Stages
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
    mqtt: str | None = None
    unit: str | None = None
    site: str | None = None
    data_dir: str | None = None
    models_dir: Path = MODELS_DIR


def apply_overrides(loaded: LoadedConfig, opts: RunOptions) -> LoadedConfig:
    """The config with command-line overrides applied (validated again)."""
    cfg = loaded.config.model_copy(deep=True)
    if opts.unit:
        cfg.site.unit_id = opts.unit
    if opts.site:
        cfg.site.site_id = opts.site
    if opts.data_dir:
        cfg.storage.data_dir = opts.data_dir
    cfg = type(cfg).model_validate(cfg.model_dump())
    return LoadedConfig(cfg, loaded.path, loaded.text)


def data_dir(loaded: LoadedConfig) -> Path:
    """The unit's data folder, created if needed; a clear error when it cannot be."""
    d = Path(loaded.config.storage.data_dir).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OSError(
            f"storage.data_dir {d}: not writable ({e.strerror}); set it in the config or use --data-dir"
        ) from None
    return d


def build_stages(loaded: LoadedConfig, opts: RunOptions) -> tuple[Stages, dict]:
    """Every stage of the unit, ready to run; returns (stages, birth info for the hub)."""
    from firmware.detect import load_detector
    from firmware.rules import RuleEngine
    from firmware.track import Tracker

    cfg = loaded.config
    if opts.source:
        source_spec = opts.source
    elif cfg.camera.source in ("picamera2", "camera"):
        source_spec = cfg.camera.source
    else:
        source_spec = str(loaded.resolve(cfg.camera.source))
    factory = open_source_factory(source_spec, cfg.camera)
    reader = FrameReader(
        factory,
        paced=not opts.fast,
        loop=opts.loop,
        stall_timeout_s=cfg.camera.stall_timeout_s,
        backoff_s=cfg.camera.reopen_backoff_s,
    )
    detector = load_detector(cfg.detector, models_dir=opts.models_dir)
    reader.start()  # fails here, clearly, for a missing or unreadable clip
    fps = reader.fps
    stages = Stages(
        reader=reader,
        detector=detector,
        tracker=Tracker(cfg.tracker, fps=fps),
        engine=RuleEngine(cfg, frame_size=reader.frame_size, fps=fps),
        every_nth_frame=cfg.detector.every_nth_frame,
    )
    if opts.events_out:
        stages.sinks.append(JsonLinesSink(opts.events_out))
    birth = {
        "firmware": __version__,
        "models": [{"name": detector.name, "sha256": detector.sha256, "backend": detector.backend}],
        "config_hash": hashlib.sha256(loaded.text.encode()).hexdigest(),
        "capabilities": ["events", "metrics", "deterrents"],
        "source": reader.name,
    }
    return stages, birth


def fail(message: str) -> int:
    """Print a one-line error for the user and return the exit status."""
    print(f"vigil: error: {message}", file=sys.stderr)
    return 2
