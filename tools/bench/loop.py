"""Whole-loop benchmark: fps of the unit's frame loop on a shared clip and each stage's share.

    .venv/bin/python tools/bench/loop.py [--clip PATH] [--frames N] [--threads N]
                                         [--flip-test on|off|both]

Runs exactly what `vigil run --fast` runs (same stages, default config for the rules and
tracker, demo zones), with no status output, then prints frames per second and the share of
the frame time spent in each stage. Shares are ratios within one run, so they are
comparable across noisy machines; absolute fps is for this machine only. ``--flip-test
both`` runs the loop without, then with the detector's test-time flip and prints the ratio of
the two frame rates (what the flip costs, measured in one run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware.commands.run import DEMO_CONFIG
from firmware.config import load
from firmware.paths import eval_data_dir
from firmware.unit import RunOptions, apply_overrides, build_unit

DEFAULT_CLIP = "caviar/lisbon/videos/TwoLeaveShop2front.mpg"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--clip", default=None, help=f"video file (default: $VIGIL_EVAL_DATA/{DEFAULT_CLIP})"
    )
    p.add_argument(
        "--frames", type=int, default=None, help="stop after N frames (default: whole clip)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="interpreter threads (default: config)"
    )
    p.add_argument(
        "--flip-test",
        choices=["on", "off", "both"],
        default=None,
        help="detector test-time flip (default: config); both = off then on, with the fps ratio",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    clip = Path(args.clip) if args.clip else eval_data_dir() / DEFAULT_CLIP
    if not clip.exists():
        print(f"clip {clip} not found (set VIGIL_EVAL_DATA or pass --clip)", file=sys.stderr)
        return 2
    flips = {None: [None], "on": [True], "off": [False], "both": [False, True]}[args.flip_test]
    runs = [_run(clip, args.threads, args.frames, flip) for flip in flips]
    if args.json:
        print(json.dumps(runs if len(runs) > 1 else runs[0], indent=2))
        return 0
    for out in runs:
        _print(out)
    if len(runs) == 2:
        print(f"test-time flip: {runs[1]['fps'] / runs[0]['fps']:.2f}x the frame rate without it")
    return 0


def _run(clip: Path, threads: int | None, frames: int | None, flip: bool | None) -> dict:
    """One fast run of the loop on ``clip``; frames per second and per-stage times."""
    loaded = load(DEMO_CONFIG)
    if threads:
        loaded.config.detector.threads = threads
    if flip is not None:
        loaded.config.detector.flip_test = flip
    opts = RunOptions(
        source=str(clip),
        fast=True,
        mqtt="none",
        data_dir="/tmp/vigil-bench",
        max_frames=frames,
        watchdog=False,
    )
    loaded = apply_overrides(loaded, opts)
    unit = build_unit(loaded, opts)
    result = unit.run()
    birth = unit.birth
    per = result.metrics.per_frame_ms()
    total = sum(per.values()) or 1.0
    return {
        "clip": str(clip),
        "frames": result.frames,
        "fps": round(result.metrics.fps_overall(), 2),
        "model": birth["models"][0]["name"],
        "threads": loaded.config.detector.threads,
        "flip_test": loaded.config.detector.flip_test,
        "stage_ms": {k: round(v, 3) for k, v in per.items()},
        "stage_share": {k: round(v / total, 4) for k, v in per.items()},
    }


def _print(out: dict) -> None:
    print(
        f"clip {Path(out['clip']).name}: {out['frames']} frames, whole loop {out['fps']} fps "
        f"({out['model']}, {out['threads']} thread(s), flip test {'on' if out['flip_test'] else 'off'})"
    )
    total = sum(out["stage_ms"].values()) or 1.0
    print(f"{'stage':<12}{'ms/frame':>10}{'share':>8}")
    for k, v in out["stage_ms"].items():
        print(f"{k:<12}{v:>10.2f}{100 * v / total:>7.1f}%")
    print(f"{'total':<12}{total:>10.2f}")


if __name__ == "__main__":
    sys.exit(main())
