"""One builder for the unit's stages: at start (``firmware.unit.build_unit``) and again for a
hub ``config/set`` (``build_live``). A build either completes or releases everything it
opened (``Opened``), and never touches the running pipeline: the caller swaps the result in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from firmware.config import LoadedConfig
from firmware.config.schema import VigilConfig, section_apply
from firmware.stages import AnonymiserStage, DeterrentStage, RuleStage, TrackerStage

log = logging.getLogger(__name__)
T = TypeVar("T")


class Opened:
    """What a build opened so far; released newest first when the build fails."""

    def __init__(self) -> None:
        self._closers: list[Callable[[], Any]] = []

    def keep(self, obj: T, close: Callable[[], Any] | None = None) -> T:
        """Register ``obj`` (closed by ``close``, default ``obj.close``) and return it."""
        self._closers.append(close or obj.close)  # type: ignore[attr-defined]
        return obj

    def release(self) -> None:
        while self._closers:
            quiet(self._closers.pop())

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.release()


@dataclass
class BuildContext:
    """What every build of this unit shares: facts of the running source and hardware."""

    fps: float
    frame_size: tuple[int, int]
    pin_factory: Any  # gpiozero pin factory (firmware.deter.pins), one per process
    clock: Callable[[], float]  # the source clock (firmware.clock.SourceClock.now)
    anonymise: bool  # an anonymiser runs (recording or preview)


@dataclass
class LiveStages:
    """The stages a hub ``config/set`` rebuilds on the running unit."""

    tracker: TrackerStage
    engine: RuleStage
    deterrents: DeterrentStage | None
    anonymiser: AnonymiserStage | None
    mask_score_threshold: float
    static_masks_before_inference: bool


def build_live(
    loaded: LoadedConfig, ctx: BuildContext, opened: Opened, *, deterrents: bool = True
) -> LiveStages:
    """Tracker, rules, deterrents (unless ``deterrents`` is False: they claim GPIO pins, see
    ``build_deterrents``) and anonymiser for ``loaded``; ``opened`` keeps what needs closing."""
    from firmware.rules import RuleEngine
    from firmware.track import Tracker

    cfg = loaded.config
    tracker = Tracker(cfg.tracker, fps=ctx.fps)
    engine = RuleEngine(cfg, frame_size=ctx.frame_size, fps=ctx.fps)
    anonymiser = None
    if ctx.anonymise:
        from firmware.privacy import Anonymiser

        anonymiser = Anonymiser(cfg.privacy)
    return LiveStages(
        tracker=tracker,
        engine=engine,
        deterrents=build_deterrents(loaded, ctx, opened) if deterrents else None,
        anonymiser=anonymiser,
        mask_score_threshold=cfg.privacy.min_score,
        static_masks_before_inference=cfg.privacy.static_masks_before_inference,
    )


def build_deterrents(
    loaded: LoadedConfig, ctx: BuildContext, opened: Opened
) -> DeterrentStage | None:
    """The deterrent controller for ``loaded`` (None without outputs). It claims its pins:
    a controller using the same pins must be closed first."""
    if not loaded.config.deterrents:
        return None
    from firmware.deter import DeterrentController

    return opened.keep(
        DeterrentController(
            loaded.config, pin_factory=ctx.pin_factory, base_dir=loaded.base_dir, clock=ctx.clock
        )
    )


def changed_sections(old: VigilConfig, new: VigilConfig) -> tuple[list[str], list[str]]:
    """(applied live, needing a restart): the top-level sections that differ, by what each
    section declares (firmware.config.schema)."""
    applied, restart = [], []
    for name, mode in section_apply().items():
        if getattr(old, name) != getattr(new, name):
            (applied if mode == "live" else restart).append(name)
    return applied, restart


def stored_config_path(data_dir: Path) -> Path:
    """Where a config accepted from the hub is kept (the service may write only under its
    state directory); `vigil run` prefers it over --config at the next start."""
    return Path(data_dir) / "config" / "site.toml"


def quiet(fn: Callable[[], Any]) -> None:
    """Run a closer; log, never raise (shutdown and rollback must go on)."""
    try:
        fn()
    except Exception:  # noqa: BLE001
        log.exception("error while releasing a stage")
