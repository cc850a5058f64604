"""`vigil-eval track`: the unit's own tracker, default settings, on MOTChallenge detections.

Reads ``frame,id,x,y,w,h,score,...`` detections, runs ``firmware.track.Tracker`` frame by
frame at the sequence's frame rate (from seqinfo.ini) and writes MOTChallenge results
``frame,id,x,y,w,h,1,-1,-1,-1``: one row per confirmed track the tracker reports as seen in
that frame. Bad detection lines (malformed, non-finite, zero or negative size, frame past
seqLength) are skipped and counted on stderr; a file with no usable detection, or with
scores outside 0..1 (unless --rescale-scores), is an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from firmware.config.schema import VigilConfig
from firmware.track import Tracker, TrackerConfig
from firmware.types import PERSON, Detections, Tracks, TrackState
from tools.eval.mot import read_mot, read_seqinfo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--det", type=Path, required=True, help="MOTChallenge detections (det.txt)")
    parser.add_argument(
        "--seqinfo", type=Path, required=True, help="seqinfo.ini with frameRate (and seqLength)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="MOTChallenge results file to write"
    )
    parser.add_argument(
        "--rescale-scores",
        action="store_true",
        help="map the file's score range linearly onto 0..1 (for detectors whose scores are not confidences, such as MOTChallenge's ACF detections)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse a file with any bad line instead of skipping and counting them",
    )


def detections_by_frame(rows: np.ndarray, num_frames: int) -> list[Detections]:
    """MOT rows (x, y, w, h) -> one ``Detections`` (xyxy, class person) per frame 1..num_frames."""
    frames = rows[:, 0].astype(np.int64)
    order = np.argsort(frames, kind="stable")
    rows, frames = rows[order], frames[order]
    bounds = np.searchsorted(frames, np.arange(1, num_frames + 2))
    out = []
    for t in range(num_frames):
        r = rows[bounds[t] : bounds[t + 1]]
        boxes = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1).astype(np.float32)
        scores = r[:, 6].astype(np.float32)
        out.append(Detections(boxes, scores, np.full(len(r), PERSON, np.int16)))
    return out


def result_rows(frame: int, tracks: Tracks) -> np.ndarray:
    """MOT result rows for the confirmed tracks seen in this frame."""
    keep = (tracks.states == TrackState.CONFIRMED) & tracks.matched
    b = tracks.boxes[keep].astype(np.float64)
    n = b.shape[0]
    return np.column_stack(
        [
            np.full(n, frame),
            tracks.ids[keep],
            b[:, 0],
            b[:, 1],
            b[:, 2] - b[:, 0],
            b[:, 3] - b[:, 1],
            np.ones(n),
            -np.ones((n, 3)),
        ]
    )


def track_sequence(
    frames: list[Detections], fps: float, config: TrackerConfig | None = None
) -> np.ndarray:
    """Run the tracker over per-frame detections; (N,10) MOT result rows."""
    cfg = config if config is not None else VigilConfig().tracker
    tracker = Tracker(cfg, fps=fps)
    out = []
    for i, d in enumerate(frames):
        tracks = tracker.update(d, i / fps)
        if len(tracks):
            out.append(result_rows(i + 1, tracks))
    return np.concatenate(out) if out else np.zeros((0, 10))


def write_results(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(
                f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},1,-1,-1,-1\n"
            )
    tmp.replace(path)


def run(args: argparse.Namespace) -> int:
    info = read_seqinfo(args.seqinfo)
    fps = float(info["frameRate"])
    seq_len = info.get("seqLength")
    det = read_mot(args.det, max_frame=int(seq_len) if seq_len else None)
    if det.lines == 0:
        raise ValueError(f"{args.det}: empty detection file (no detection lines)")
    if det.n_skipped:
        msg = f"{args.det}: skipped {det.n_skipped} of {det.lines} lines: {det.skip_summary()}"
        if args.strict:
            raise ValueError(msg)
        print(f"vigil-eval track: warning: {msg}", file=sys.stderr)
    if det.rows.shape[0] == 0:
        raise ValueError(f"{args.det}: no usable detection in {det.lines} lines")
    lo, hi = float(det.rows[:, 6].min()), float(det.rows[:, 6].max())
    if args.rescale_scores:
        det.rows[:, 6] = (det.rows[:, 6] - lo) / (hi - lo) if hi > lo else 1.0
    elif lo < 0 or hi > 1:
        raise ValueError(
            f"{args.det}: scores range from {lo:g} to {hi:g}, outside 0..1; the tracker's "
            "thresholds are for confidences in 0..1 (--rescale-scores maps this file's range onto 0..1)"
        )
    num_frames = int(seq_len) if seq_len else int(det.rows[:, 0].max())
    rows = track_sequence(detections_by_frame(det.rows, num_frames), fps)
    write_results(args.out, rows)
    n_ids = np.unique(rows[:, 1]).size if rows.size else 0
    print(
        f"vigil-eval track: {num_frames} frames at {fps:g} fps, {det.rows.shape[0]} detections"
        f" -> {rows.shape[0]} result rows, {n_ids} tracks: {args.out}",
        file=sys.stderr,
    )
    return 0
