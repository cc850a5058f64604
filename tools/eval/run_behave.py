"""`vigil-eval behave`: the unit's rule engine on a MOT tracks file, events as JSON lines.

Tracks file: ``frame,id,x,y,w,h,conf,class`` per line (frames from 1, boxes in pixels,
``class`` a COCO category id: 1 person; 27 backpack, 31 handbag, 33 suitcase). Output: one
JSON object per event (one per situation, written when it ends) with ``type``, ``rule``,
``start_frame``, ``end_frame`` (file frame numbers), ``track_ids``, ``zone``, ``severity``
and ``explanation`` (measured values and thresholds).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from firmware.types import Tracks, TrackState

WARN_GAP_S_DEFAULT = 60.0


class TracksFileError(ValueError):
    """A tracks file that cannot be used; the message names the file, line and problem."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracks",
        required=True,
        help="MOT tracks file: frame,id,x,y,w,h,conf,class (frames from 1)",
    )
    p.add_argument(
        "--site",
        default=None,
        help="site config TOML (zones, lines, rule thresholds); without it the zone-free rules run with their defaults",
    )
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the tracks (default 25)")
    p.add_argument(
        "--size",
        default=None,
        help="frame size WxH in pixels (needed with a --site that has zones or lines; default: where the boxes end)",
    )
    p.add_argument("--out", default="-", help="events file, JSON lines (default: standard output)")
    p.add_argument(
        "--start-time",
        default=None,
        help="wall-clock time of frame 1, ISO 8601 (for the opening-hours schedule); default: now",
    )
    p.add_argument(
        "--warn-gap",
        type=float,
        default=WARN_GAP_S_DEFAULT,
        metavar="SECONDS",
        help=f"warn (on standard error) about each stretch with no tracks longer than this (default {WARN_GAP_S_DEFAULT:g} s); empty stretches are valid input (an empty shop) and are replayed as empty frames",
    )
    p.add_argument(
        "--inputs",
        default=None,
        help='store-system inputs replayed beside the tracks, JSON lines {"t": seconds from frame 1, "input": name, ...} (docs/inputs.md); needs --site naming the inputs',
    )
    p.add_argument(
        "--max-gap",
        type=int,
        default=None,
        metavar="FRAMES",
        help="refuse files with a stretch of more than FRAMES frames with no tracks (a check for truncated or joined files); default: no limit",
    )


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise ValueError(f"--size {text!r}: expected WxH in pixels, for example 384x288")
    return int(m.group(1)), int(m.group(2))


def read_tracks(path: Path, max_gap: int | None = None) -> dict[int, np.ndarray]:
    """Rows per frame, (n,7) float: id, x1, y1, x2, y2, conf, class. Every problem is
    reported with its line number. Stretches with no tracks are valid (an empty scene); only
    with ``max_gap`` is a stretch longer than that many frames refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TracksFileError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TracksFileError(f"{path}: cannot read ({e})") from None
    by_frame: dict[int, list[list[float]]] = defaultdict(list)
    seen: dict[tuple[int, int], int] = {}
    for ln, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = [p.strip() for p in s.split(",")]
        where = f"{path}:{ln}"
        if len(parts) < 8:
            raise TracksFileError(
                f"{where}: expected 8 comma-separated fields frame,id,x,y,w,h,conf,class, got {len(parts)}: {s!r}"
            )
        try:
            frame = int(float(parts[0]))
            tid = int(float(parts[1]))
            x, y, w, h, conf = (float(v) for v in parts[2:7])
            cls = int(float(parts[7]))
        except ValueError:
            raise TracksFileError(f"{where}: a field is not a number: {s!r}") from None
        if float(parts[0]) != frame or float(parts[1]) != tid or float(parts[7]) != cls:
            raise TracksFileError(f"{where}: frame, id and class must be whole numbers: {s!r}")
        if frame < 1:
            raise TracksFileError(f"{where}: frame {frame}: frames count from 1")
        if not all(np.isfinite(v) for v in (x, y, w, h, conf)):
            raise TracksFileError(f"{where}: box or confidence is not finite: {s!r}")
        if w <= 0 or h <= 0:
            raise TracksFileError(
                f"{where}: box width and height must be positive, got w={w} h={h}"
            )
        if cls < 1 or cls > 90:
            raise TracksFileError(
                f"{where}: class {cls} is not a COCO category id (1 person, 27 backpack, 31 handbag, 33 suitcase)"
            )
        if (frame, tid) in seen:
            raise TracksFileError(
                f"{where}: track {tid} appears twice in frame {frame} (first on line {seen[frame, tid]})"
            )
        seen[frame, tid] = ln
        by_frame[frame].append([tid, x, y, x + w, y + h, conf, cls])
    if not by_frame:
        raise TracksFileError(f"{path}: no tracks in the file")
    if max_gap is not None:
        gaps = empty_stretches(by_frame, max_gap + 1)
        if gaps:
            a, b = max(gaps, key=lambda g: g[1] - g[0])
            raise TracksFileError(
                f"{path}: gap of {b - a - 1} frames with no tracks between frames {a} and {b} (more than --max-gap {max_gap}); is the file truncated or two files joined? Leave out --max-gap if the scene was really empty"
            )
    return {f: np.array(rows, np.float64) for f, rows in by_frame.items()}


def empty_stretches(by_frame: dict[int, Any], min_frames: int) -> list[tuple[int, int]]:
    """(last frame before, first frame after) of every run of at least ``min_frames`` frames
    with no tracks inside the file."""
    frames = np.array(sorted(by_frame))
    gaps = np.diff(frames) - 1
    return [(int(frames[i]), int(frames[i + 1])) for i in np.flatnonzero(gaps >= min_frames)]


def gap_warnings(
    path: Path, by_frame: dict[int, Any], fps: float, warn_s: float = WARN_GAP_S_DEFAULT
) -> list[str]:
    """One line per empty stretch longer than ``warn_s`` seconds (suspicious in a busy scene:
    a tracker that lost everyone, or two files joined), at most ten and a count."""
    gaps = empty_stretches(by_frame, max(1, int(np.floor(warn_s * fps)) + 1))
    lines = [
        f"{path}: no tracks for {b - a - 1} frames ({(b - a - 1) / fps:.1f} s) between frames {a} and {b}; replayed as an empty scene"
        for a, b in gaps[:10]
    ]
    if len(gaps) > 10:
        lines.append(f"{path}: {len(gaps) - 10} more stretches with no tracks over {warn_s:g} s")
    return lines


def to_tracks(rows: np.ndarray | None) -> Tracks:
    if rows is None or len(rows) == 0:
        return Tracks.empty()
    n = len(rows)
    return Tracks(
        ids=rows[:, 0].astype(np.int64),
        boxes=rows[:, 1:5].astype(np.float32),
        scores=rows[:, 5].astype(np.float32),
        classes=rows[:, 6].astype(np.int16),
        states=np.full(n, TrackState.CONFIRMED, np.int8),
        velocities=np.zeros((n, 2), np.float32),
        matched=np.ones(n, bool),
    )


def _record(ev: Any, first: Any) -> dict[str, Any]:
    d = ev.to_dict()
    return {
        "type": d["type"],
        "rule": d["rule"],
        "event_id": d["event_id"],
        "start_frame": d["start_frame"],
        "end_frame": d["end_frame"] if d["end_frame"] is not None else d["frame"],
        "start_time": d["start_time"],
        "end_time": d["end_time"] if d["end_time"] is not None else d["time"],
        "detected_frame": first.frame,
        "track_ids": d["track_ids"],
        "zone": d["zone"],
        "severity": d["severity_name"],
        "explanation": d["explain"],
    }


def behave(
    tracks_path: Path,
    cfg: Any,
    fps: float,
    size: tuple[int, int] | None,
    start_time: datetime | None = None,
    max_gap: int | None = None,
    warn_gap_s: float = WARN_GAP_S_DEFAULT,
    warn: Any = None,
    inputs: list | None = None,
) -> list[dict[str, Any]]:
    """Run the engine over a tracks file (and store-system input records, on the same clock);
    one record per situation or instant event. ``warn`` (a callable taking a line) gets the
    empty-stretch warnings. Frames run on past the last track until the last input has been
    seen."""
    from firmware.events.records import EventPhase
    from firmware.rules import RuleEngine

    by_frame = read_tracks(tracks_path, max_gap)
    if warn is not None:
        for line in gap_warnings(tracks_path, by_frame, fps, warn_gap_s):
            warn(line)
    if size is None:
        right = max(float(r[:, 3].max()) for r in by_frame.values())
        bottom = max(float(r[:, 4].max()) for r in by_frame.values())
        size = (max(1, int(np.ceil(right))), max(1, int(np.ceil(bottom))))
    engine = RuleEngine(cfg, frame_size=size, fps=fps, wall_clock_start=start_time)
    first: dict[str, Any] = {}
    out: list[dict[str, Any]] = []

    def consume(events: list) -> None:
        for ev in events:
            if ev.phase is EventPhase.INSTANT:
                out.append(_record(ev, ev))
            elif ev.phase is EventPhase.START:
                first[ev.event_id] = ev
            elif ev.phase is EventPhase.END:
                out.append(_record(ev, first.pop(ev.event_id, ev)))

    inputs = list(inputs or [])
    last = max(by_frame)
    if inputs:
        last = max(last, int(np.ceil(inputs[-1].t * fps)) + 1)
    k = 0
    for f in range(1 if inputs else min(by_frame), last + 1):
        t = (f - 1) / fps
        j = k
        while j < len(inputs) and inputs[j].t <= t:
            j += 1
        consume(engine.update(to_tracks(by_frame.get(f)), t, f, inputs[k:j]))
        k = j
    consume(engine.close((last - 1) / fps, last))
    out.sort(key=lambda r: (r["start_frame"], r["type"]))
    return out


def run(args: argparse.Namespace) -> int:
    from firmware.config import ConfigError, default, load

    if not args.fps or args.fps <= 0:
        raise ValueError(f"--fps must be positive, got {args.fps}")
    try:
        cfg = load(args.site).config if args.site else default().config
    except ConfigError as e:
        for p in e.problems:
            print(f"vigil-eval behave: {e.source}: {p}", file=sys.stderr)
        return 2
    if args.size:
        size: tuple[int, int] | None = parse_size(args.size)
    elif args.site and (cfg.zones or cfg.lines):
        raise ValueError("--size WxH is needed with a site config that has zones or lines")
    else:
        size = None  # the boxes' extent (rules use it only to spot boxes cut by the border)
    start_text = getattr(args, "start_time", None)
    try:
        start = datetime.fromisoformat(start_text) if start_text else None
    except ValueError:
        raise ValueError(
            f"--start-time {start_text!r}: expected ISO 8601, for example 2026-01-05T22:00"
        ) from None
    max_gap = getattr(args, "max_gap", None)
    if max_gap is not None and max_gap < 0:
        raise ValueError(f"--max-gap must be 0 or more frames, got {max_gap}")
    warn_gap = getattr(args, "warn_gap", WARN_GAP_S_DEFAULT)
    if not warn_gap > 0:
        raise ValueError(f"--warn-gap must be a positive number of seconds, got {warn_gap}")
    inputs = None
    if getattr(args, "inputs", None):
        from tools.eval.inputs_file import read_inputs

        inputs = read_inputs(Path(args.inputs), cfg, Path(args.site).parent if args.site else None)
    records = behave(
        Path(args.tracks),
        cfg,
        float(args.fps),
        size,
        start,
        max_gap,
        warn_gap,
        warn=lambda line: print(f"vigil-eval behave: warning: {line}", file=sys.stderr),
        inputs=inputs,
    )
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    if args.out in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0
