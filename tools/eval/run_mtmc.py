"""`vigil-eval mtmc`: the hub's fusion, default settings, on per-view local tracks.

``vigil-eval mtmc --cameras CAMERAS.json --tracks VIEW=TRACKS.txt [VIEW=TRACKS.txt ...]
--out OUTDIR`` reads each view's MOT tracks (the output of ``vigil-eval track``, frames from
1, synchronised across views), projects their foot points to the floor with the view's
homography from CAMERAS.json (null: uncalibrated, that view's tracks keep ids of their own),
feeds them to ``tools.hub.fusion.Fusion`` as units would (one unit-frame per view and frame,
in time order) and writes ``OUTDIR/<VIEW>.txt`` (MOT format) with global ids. With ``--gt``
it also scores the result, beside a no-fusion baseline and the position-clustering anchor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tools.eval.mot import format_table, read_mot
from tools.eval.mtmc import fuse_anchor, fuse_hub, fuse_none, load_cameras, score_groups
from tools.eval.run_track import write_results


def _pairs(values: list[str], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in values:
        view, sep, path = item.partition("=")
        if not sep or not view or not path:
            raise ValueError(f"{what} {item!r}: expected VIEW=FILE")
        if view in out:
            raise ValueError(f"{what} {item!r}: view {view} given twice")
        out[view] = Path(path)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cameras", type=Path, required=True, help="cameras.json of the views")
    parser.add_argument(
        "--tracks", nargs="+", required=True, metavar="VIEW=TRACKS.txt", help="per-view MOT tracks"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for <VIEW>.txt results")
    parser.add_argument(
        "--gt",
        nargs="+",
        default=[],
        metavar="VIEW=GT.txt",
        help="per-view ground truth with global ids: score fusion, anchor and baseline",
    )
    parser.add_argument(
        "--clock-offset",
        nargs="+",
        default=[],
        metavar="VIEW=SECONDS",
        help="shift a view's clock (to check tolerance of unsynchronised units)",
    )


def load_tracks(paths: dict[str, Path], views: set[str], what: str) -> dict[str, np.ndarray]:
    """Read per-view MOT files; every view must be in cameras.json; bad lines are errors."""
    out = {}
    for view, path in paths.items():
        if view not in views:
            raise ValueError(f"{what} {view}={path}: no view {view!r} in the cameras file")
        f = read_mot(path)
        if f.n_skipped:
            raise ValueError(f"{path}: {f.n_skipped} bad lines: {f.skip_summary()}")
        out[view] = f.rows
    return out


def run(args: argparse.Namespace) -> int:
    cams = load_cameras(args.cameras)
    tracks = load_tracks(_pairs(args.tracks, "--tracks"), set(cams.views), "--tracks")
    for view, rows in tracks.items():
        ids = rows[:, :2].astype(np.int64)
        if np.unique(ids, axis=0).shape[0] != ids.shape[0]:
            raise ValueError(f"--tracks {view}: an id repeats within a frame")
    offsets = {}
    for item in args.clock_offset:
        view, _, sec = item.partition("=")
        try:
            offsets[view] = float(sec)
        except ValueError:
            raise ValueError(f"--clock-offset {item!r}: expected VIEW=SECONDS") from None
        if view not in tracks:
            raise ValueError(f"--clock-offset {item!r}: no --tracks for view {view!r}")
    fused = fuse_hub(cams, tracks, clock_offsets=offsets)
    args.out.mkdir(parents=True, exist_ok=True)
    for view, rows in fused.items():
        write_results(args.out / f"{view}.txt", rows)
    n_ids = np.unique(np.concatenate([r[:, 1] for r in fused.values()])).size
    n_local = sum(np.unique(r[:, 1]).size for r in tracks.values())
    print(
        f"vigil-eval mtmc: {len(tracks)} views, {n_local} local tracks -> {n_ids} global ids:"
        f" {args.out}",
        file=sys.stderr,
    )
    if args.gt:
        gt = load_tracks(_pairs(args.gt, "--gt"), set(cams.views), "--gt")
        missing = set(gt) ^ set(tracks)
        if missing:
            raise ValueError(
                f"--gt and --tracks must name the same views (differ: {sorted(missing)})"
            )
        for name, res in (
            ("fusion", fused),
            ("anchor", fuse_anchor(cams, tracks)),
            ("no fusion", fuse_none(tracks)),
        ):
            s = score_groups({args.cameras.parent.name or "group": (gt, res)})
            print(format_table({k: v for k, v in s.items() if k != "COMBINED"}, name))
            print(f"cross-view {100 * s['COMBINED']['XV']:.2f}")
    return 0
