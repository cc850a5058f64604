"""Pose stage cost per person: the unit's MoveNet estimator on real clip frames and boxes.

    python -m tools.bench.pose [--clip CLIP] [--people 1 2 4 8] [--runs 10] [--threads 2]

Runs ``PoseEstimator.estimate`` (one square crop per person, int8 body plus float decode)
on frames of a real clip with 1, 2, 4 and 8 person boxes (the detector's boxes on that
frame, repeated when it found fewer) and prints the median and 95th percentile per call
and per person, plus the ratio to one person (one crop per person: the cost grows with the
number of people; on a shared machine read the ratios, not the absolute times).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from firmware.paths import MODELS_DIR, eval_data_dir


def frames_and_boxes(clip: Path, n_frames: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """A few frames of the clip with the unit's person boxes on each."""
    from firmware.detect import DetectorConfig, load_detector

    det = load_detector(DetectorConfig(background=False), models_dir=MODELS_DIR)
    cap = cv2.VideoCapture(str(clip))
    out = []
    while len(out) < n_frames:
        ok, img = cap.read()
        if not ok:
            break
        d = det.detect(img)
        boxes = d.boxes[d.classes == 1]
        if len(boxes):
            out.append((img, boxes))
        for _ in range(5):  # spread the frames over the clip
            cap.grab()
    cap.release()
    if not out:
        raise ValueError(f"{clip}: no person found on any frame")
    return out


def main(argv: list[str] | None = None) -> int:
    from firmware.detect.pose import load_pose

    p = argparse.ArgumentParser(
        prog="python -m tools.bench.pose", description=__doc__.splitlines()[0]
    )
    p.add_argument("--clip", default=str(eval_data_dir() / "fights" / "fight" / "fi005.mp4"))
    p.add_argument("--people", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    clip = Path(args.clip)
    if not clip.is_file():
        print(f"bench pose: {clip}: not found (set VIGIL_EVAL_DATA or --clip)", file=sys.stderr)
        return 2
    pose = load_pose(threads=args.threads)
    frames = frames_and_boxes(clip)
    pose.estimate(*frames[0])  # warm-up
    print(f"pose {pose.name}, {args.threads} threads, {len(frames)} frames of {clip.name}")
    print("| people | ms per call (median) | p95 | ms per person | ratio to 1 person |")
    print("|---|---|---|---|---|")
    base = None
    for n in args.people:
        times = []
        for _ in range(args.runs):
            for img, boxes in frames:
                b = np.resize(boxes, (n, 4))
                t0 = time.perf_counter()
                pose.estimate(img, b)
                times.append((time.perf_counter() - t0) * 1e3)
        med = statistics.median(times)
        p95 = float(np.percentile(times, 95))
        base = base or med
        print(f"| {n} | {med:.1f} | {p95:.1f} | {med / n:.1f} | {med / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
