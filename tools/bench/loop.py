"""Whole-loop benchmark: fps of the unit's frame loop on a shared clip and each stage's share.

    .venv/bin/python tools/bench/loop.py [--clip PATH] [--frames N] [--threads N]
                                         [--flip-test on|off|both]
                                         [--baseline DIR [--rounds N]]

Runs exactly what `vigil run --fast` runs (same stages, default config for the rules and
tracker, demo zones), with no status output, then prints frames per second and the share of
the frame time spent in each stage. Shares are ratios within one run, so they are
comparable across noisy machines; absolute fps is for this machine only. ``--flip-test
both`` runs the loop without, then with the detector's test-time flip and prints the ratio of
the two frame rates (what the flip costs, measured in one run). ``--baseline DIR`` (a
checkout of an earlier commit, e.g. ``git archive <rev> | tar -x -C DIR``) runs that tree's
loop and this one alternately, ``--rounds`` times each, each in its own process, and prints
the median ratios this/baseline of the whole-loop frame rate and of the loop's own time per
frame (everything except capture, preprocess, inference and pose: the wiring, bus and stages).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
    p.add_argument(
        "--baseline",
        metavar="DIR",
        default=None,
        help="compare with the loop of an earlier checkout in DIR (alternating runs, ratios)",
    )
    p.add_argument(
        "--rounds", type=int, default=3, help="runs of each tree with --baseline (default 3)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    clip = Path(args.clip) if args.clip else eval_data_dir() / DEFAULT_CLIP
    if not clip.exists():
        print(f"clip {clip} not found (set VIGIL_EVAL_DATA or pass --clip)", file=sys.stderr)
        return 2
    if args.baseline:
        return _compare(Path(args.baseline), clip, args)
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


# Stages outside the loop's own work: the camera and the model.
MODEL_STAGES = ("capture", "preprocess", "inference", "pose")


def _own_ms(out: dict) -> float:
    return sum(v for k, v in out["stage_ms"].items() if k not in MODEL_STAGES)


def _subprocess_run(tree: Path, clip: Path, args: argparse.Namespace) -> dict:
    """One run of ``tree``'s own tools/bench/loop.py, in a fresh process on that tree."""
    cmd = [sys.executable, str(tree / "tools" / "bench" / "loop.py"), "--clip", str(clip), "--json"]
    if args.frames:
        cmd += ["--frames", str(args.frames)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: benchmark failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _compare(baseline: Path, clip: Path, args: argparse.Namespace) -> int:
    """Alternate baseline and this tree; median ratios (this / baseline)."""
    here = Path(__file__).resolve().parents[2]
    runs: dict[str, list[dict]] = {"baseline": [], "this": []}
    for i in range(args.rounds):
        order = [("baseline", baseline), ("this", here)]
        for name, tree in order if i % 2 == 0 else order[::-1]:
            out = _subprocess_run(tree, clip, args)
            runs[name].append(out)
            print(
                f"round {i + 1} {name:<8}: {out['fps']:6.2f} fps, own {_own_ms(out):6.3f} ms/frame",
                file=sys.stderr,
                flush=True,
            )
    fps = {k: statistics.median(r["fps"] for r in v) for k, v in runs.items()}
    own = {k: statistics.median(_own_ms(r) for r in v) for k, v in runs.items()}
    result = {
        "baseline": str(baseline),
        "rounds": args.rounds,
        "frames": runs["this"][0]["frames"],
        "fps": fps,
        "own_ms_per_frame": own,
        "fps_ratio": round(fps["this"] / fps["baseline"], 4),
        "own_ms_ratio": round(own["this"] / own["baseline"], 4) if own["baseline"] else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"clip {clip.name}: {result['frames']} frames x {args.rounds} rounds each, alternating\n"
        f"  whole loop: {fps['this']:.2f} fps vs baseline {fps['baseline']:.2f} fps: "
        f"ratio {result['fps_ratio']:.3f}\n"
        f"  loop's own time (all but capture/preprocess/inference/pose): "
        f"{own['this']:.3f} vs {own['baseline']:.3f} ms/frame: ratio {result['own_ms_ratio']:.3f}"
    )
    return 0


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
