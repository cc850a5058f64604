"""`vigil run`: the unit's frame loop on the camera or a recorded clip.

With no arguments it runs the bundled demo (a real clip and a demo site config).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from firmware.config import ConfigError, load
from firmware.paths import MODELS_DIR
from firmware.unit import RunOptions, apply_overrides, build_unit, fail, prefer_stored

log = logging.getLogger(__name__)
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "demo" / "site.toml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=None,
        help=f"site config (TOML); default: the demo config {DEMO_CONFIG.name}",
    )
    p.add_argument(
        "--source",
        "-s",
        default=None,
        help="'picamera2', a video file (MPEG-1, MP4, AVI, ...) or a folder of images; default: camera.source from the config",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="replay as fast as possible (default: at the clip's own pace, as a camera would)",
    )
    p.add_argument(
        "--loop", action="store_true", help="replay the clip endlessly (demos, soak tests)"
    )
    p.add_argument(
        "--events-out",
        metavar="FILE",
        default=None,
        help="also write every event as JSON lines to FILE",
    )
    p.add_argument(
        "--preview",
        metavar="FILE.mp4",
        default=None,
        help="write an annotated, anonymised preview video",
    )
    p.add_argument(
        "--mqtt",
        metavar="URL",
        default=None,
        help="broker override: mqtt://HOST:PORT or mqtts://HOST:PORT (TLS material from the config); 'none' runs without a link",
    )
    p.add_argument("--unit", default=None, help="unit id override")
    p.add_argument("--site", default=None, help="site id override")
    p.add_argument("--data-dir", default=None, help="storage.data_dir override (outbox, incidents)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--models-dir", default=str(MODELS_DIR), help=argparse.SUPPRESS)
    p.add_argument("--quiet", "-q", action="store_true", help="no status line every second")


def run(args: argparse.Namespace) -> int:
    from firmware.service import no_core_dumps

    no_core_dumps()  # raw frames live in this process's memory
    config_path = args.config or DEMO_CONFIG
    try:
        loaded = load(config_path)
    except ConfigError as e:
        print(f"vigil: config {e.source}:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    opts = RunOptions(
        source=args.source,
        fast=args.fast,
        loop=args.loop,
        events_out=args.events_out,
        preview=args.preview,
        mqtt=args.mqtt,
        unit=args.unit,
        site=args.site,
        data_dir=args.data_dir,
        models_dir=Path(args.models_dir),
        max_frames=args.max_frames,
    )
    stored_note = None
    try:
        loaded = apply_overrides(loaded, opts)
        loaded, stored_note = prefer_stored(loaded, opts)
        unit = build_unit(loaded, opts, status_out=None if args.quiet else sys.stdout)
    except ConfigError as e:
        return fail(f"config {e.source}: {'; '.join(e.problems)}")
    except (ValueError, OSError) as e:  # ModelError, SourceError, unwritable paths
        return fail(str(e))
    except ImportError as e:
        return fail(f"a stage could not be loaded: {e}")
    except Exception as e:  # noqa: BLE001 - any other build failure: one line, exit 2
        log.debug("build failed", exc_info=True)
        return fail(f"the unit could not be built: {type(e).__name__}: {e}")
    if stored_note:
        unit.notes.insert(0, stored_note)

    unit.loop.install_signal_handlers()
    cfg, stages, birth = loaded.config, unit.loop.s, unit.birth
    print(
        f"vigil {birth['firmware']}: unit {cfg.site.unit_id} at {cfg.site.site_id}, source {stages.reader.name} "
        f"({stages.reader.frame_size[0]}x{stages.reader.frame_size[1]} @ {stages.reader.fps:g} fps"
        f"{', fast' if args.fast else ''}{', loop' if args.loop else ''}), "
        f"model {stages.detector.name} on {stages.detector.backend}",
        flush=True,
    )
    for note in unit.notes:
        print(f"note: {note}", flush=True)
    if unit.link is not None:
        print(
            f"link: {unit.link.url} as {cfg.link.topic_prefix}/{cfg.site.site_id}/{cfg.site.unit_id}",
            flush=True,
        )
    result = unit.run()
    print(f"\nsummary ({result.stopped_by}):")
    for line in result.metrics.summary_lines():
        print(f"  {line}")
    if result.events:
        print("  events: " + ", ".join(f"{k} {v}" for k, v in sorted(result.events.items())))
    else:
        print("  events: none")
    return 0


__all__ = ["DEMO_CONFIG", "add_arguments", "run"]
