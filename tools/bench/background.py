"""Cost of the detector's static-scene (background) prior per frame, without the model:
foreground mask, evidence for the person candidates, box refinement and the live update.

    python -m tools.bench.background [--size 640 480] [--candidates 200] [--runs 300]

Uses a real CAVIAR INRIA sequence when the evaluation data is present (frames scaled to
``--size``), synthetic frames otherwise. Median ms per frame, one thread (numpy + OpenCV).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    from firmware.detect.background import BackgroundModel, rescore
    from firmware.detect.config import DetectorConfig
    from firmware.paths import eval_data_dir

    p = argparse.ArgumentParser(
        prog="python -m tools.bench.background", description=__doc__.splitlines()[0]
    )
    p.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    p.add_argument("--candidates", type=int, default=200, help="person candidates per frame")
    p.add_argument("--kept", type=int, default=10, help="kept people refined per frame")
    p.add_argument("--runs", type=int, default=300)
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    w, h = args.size
    seq = eval_data_dir() / "caviar" / "inria" / "frames" / "Walk1"
    files = sorted(seq.glob("*.jpg"))
    rng = np.random.default_rng(0)
    if files:
        frames = [cv2.resize(cv2.imread(str(f)), (w, h)) for f in files[:60]]
        src = f"CAVIAR Walk1 frames scaled to {w}x{h}"
    else:
        base = rng.integers(0, 255, (h, w, 3), np.uint8)
        frames = [np.roll(base, 7 * i, axis=1) for i in range(60)]
        src = f"synthetic {w}x{h} frames"
    cfg = DetectorConfig()
    bg = BackgroundModel(
        cfg.background_width,
        cfg.background_threshold,
        cfg.background_step,
        warmup_frames=1,
        max_foreground=1.0,
    )
    xy = rng.uniform(0, [w * 0.9, h * 0.8], (args.candidates, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, [w * 0.1, h * 0.2], xy.shape)], 1)
    boxes = boxes.astype(np.float32)
    scores = rng.uniform(0.02, 0.6, args.candidates).astype(np.float32)
    bg.update(frames[0])
    parts: dict[str, list[float]] = {"mask": [], "evidence": [], "refine": [], "update": []}
    for i in range(args.runs):
        f = frames[i % len(frames)]
        t0 = time.perf_counter()
        m = bg.mask(f)
        t1 = time.perf_counter()
        fg, cover = bg.evidence(m, boxes, (w, h))
        rescore(scores, fg, cover, cfg.background_weight, cfg.background_full)
        t2 = time.perf_counter()
        bg.refine_boxes(m, boxes[: args.kept], (w, h), cfg.background_refine)
        t3 = time.perf_counter()
        bg.update(f, keep=boxes[:3])
        t4 = time.perf_counter()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[k].append(v * 1e3)
    med = {k: statistics.median(v) for k, v in parts.items()}
    print(f"Background prior, {src}, model {cfg.background_width} px wide, median ms per frame:")
    print(f"| {' | '.join(parts)} | total |")
    print("|" + "---|" * (len(parts) + 1))
    print(f"| {' | '.join(f'{v:.2f}' for v in med.values())} | {sum(med.values()):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
