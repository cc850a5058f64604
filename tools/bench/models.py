"""Latency of every model in models/manifest.toml: median of many LiteRT invokes, at 1 and 2
threads, float references next to the int8 models (ratios measured in one run).

    python -m tools.bench.models [--runs 50] [--threads 1 2] [--models NAME ...]

Also times the whole detector stage (preprocess + inference + decode) on a real frame.
Absolute figures depend on the machine (and its load); compare ratios within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def bench_model(spec, models_dir: Path, threads: int, runs: int, warmup: int = 5) -> float:
    """Median ms of ``runs`` invokes of ``spec`` on random (fixed-seed) input."""
    from firmware.detect.runtime import load_model

    m = load_model(spec, models_dir, threads)
    it = m.interpreter
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        if d["dtype"] == np.float32:
            x = rng.uniform(-1, 1, d["shape"]).astype(np.float32)
        else:
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max, d["shape"], endpoint=True).astype(d["dtype"])
        it.set_tensor(d["index"], x)
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        it.invoke()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_detector(
    models_dir: Path, threads: int, runs: int, image: np.ndarray, tiles=(1, 1), flip: bool = True
) -> dict:
    """Median ms per stage of the unit's detector on ``image``."""
    from firmware.detect import DetectorConfig, load_detector

    cfg = DetectorConfig(threads=threads, tiles=tiles, flip_test=flip)
    det = load_detector(cfg, models_dir=models_dir)
    for _ in range(3):
        det.detect(image)
    rows = []
    for _ in range(runs):
        det.detect(image)
        rows.append(det.last_timings)
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main(argv: list[str] | None = None) -> int:
    from firmware.detect import read_manifest
    from firmware.paths import MODELS_DIR, eval_data_dir

    p = argparse.ArgumentParser(
        prog="python -m tools.bench.models", description=__doc__.splitlines()[0]
    )
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--models", nargs="*", help="names (default: every model whose file is present)")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = p.parse_args(argv)
    specs = read_manifest(args.models_dir)
    names = args.models or [n for n, s in specs.items() if s.path(args.models_dir).exists()]
    print(
        f"| model | task | quantisation | {' | '.join(f'{t} thread' + ('s' if t > 1 else '') + ' ms' for t in args.threads)} |"
    )
    print("|---|---|---|" + "---|" * len(args.threads))
    for n in names:
        s = specs[n]
        cells = [f"{bench_model(s, args.models_dir, t, args.runs):.1f}" for t in args.threads]
        q = "float" if "float" in n or s.task == "face" or "decode" in n else "int8"
        print(f"| {n} | {s.task} | {q} | {' | '.join(cells)} |", flush=True)

    import cv2

    img_path = eval_data_dir() / "caviar" / "inria" / "frames" / "Walk1" / "0300.jpg"
    img = cv2.imread(str(img_path)) if img_path.exists() else None
    if img is None:
        img = np.random.default_rng(0).integers(0, 255, (288, 384, 3), dtype=np.uint8)
    print(f"\nDetector stage on a {img.shape[1]}x{img.shape[0]} frame (median ms):\n")
    print("| threads | tiles | test-time flip | preprocess | inference | decode | total |")
    print("|---|---|---|---|---|---|---|")
    for t in args.threads:
        for tiles, flip in [((1, 1), False), ((1, 1), True), ((2, 2), False)]:
            r = bench_detector(args.models_dir, t, max(10, args.runs // 2), img, tiles, flip)
            print(
                f"| {t} | {tiles[0]}x{tiles[1]} | {'on' if flip else 'off'} | "
                f"{r['preprocess']:.1f} | {r['inference']:.1f} | "
                f"{r['decode']:.1f} | {sum(r.values()):.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
