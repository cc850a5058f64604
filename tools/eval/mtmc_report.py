"""Dev-set report for multi-camera fusion: per group and combined, plus leave-one-group-out.

``python -m tools.eval.mtmc_report [--data ../shared/data/multicam] [--cache /tmp/vigil-mtmc]``
runs the unit's tracker on each view's det/det.txt once (cached under --cache), then the
hub's fusion, the position-clustering anchor and the no-fusion baseline, each over a small
grid of its one tuned setting (scores cached per setting). For every group held out, the
setting with the best mean IDF1 on the other groups is applied to it: those held-out figures
are the ones that were not tuned on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from tools.eval.mot import read_mot, read_seqinfo
from tools.eval.mtmc import fuse_anchor, fuse_hub, fuse_none, load_cameras, score_groups
from tools.eval.run_track import detections_by_frame, track_sequence, write_results
from tools.hub.fusion import FusionConfig

GRIDS = {  # method -> {setting label: kwargs}; the first entry is the default
    "fusion": {f"gate_spread={s}": {"gate_spread": s} for s in (4.0, 5.0)},
    "anchor": {f"gate_m={g}": {"gate_m": g} for g in (3.0, 4.5)},
    "none": {"-": {}},
}
KEYS = ("IDF1", "HOTA", "MOTA", "XV")


def local_tracks(group_dir: Path, cache: Path) -> dict[str, np.ndarray]:
    """Per-view tracks from the unit's tracker on det/det.txt, cached as MOT files."""
    out = {}
    for view_dir in sorted(p for p in group_dir.iterdir() if (p / "det" / "det.txt").is_file()):
        path = cache / group_dir.name / f"{view_dir.name}.txt"
        if not path.is_file():
            info = read_seqinfo(view_dir / "seqinfo.ini")
            det = read_mot(view_dir / "det" / "det.txt")
            frames = detections_by_frame(det.rows, int(info["seqLength"]))
            write_results(path, track_sequence(frames, float(info["frameRate"])))
        out[view_dir.name] = read_mot(path).rows
    return out


def fuse(method: str, kwargs: dict, cams, tracks) -> dict[str, np.ndarray]:
    if method == "fusion":
        return fuse_hub(cams, tracks, FusionConfig(**kwargs))
    if method == "anchor":
        return fuse_anchor(cams, tracks, **kwargs)
    return fuse_none(tracks)


def scores(data: Path, cache: Path, methods: list[str]) -> dict:
    """{method: {setting: {group|COMBINED: {metric: value}}}}, cached in cache/scores-*.json."""
    done = {}
    for method in GRIDS:
        store = cache / f"scores-{method}.json"
        done[method] = json.loads(store.read_text()) if store.is_file() else {}
    groups = sorted(p for p in data.iterdir() if (p / "cameras.json").is_file())
    inputs = {}
    for method in methods:
        store = cache / f"scores-{method}.json"
        for label, kwargs in GRIDS[method].items():
            if label in done.get(method, {}):
                continue
            per = {}
            for g in groups:
                if g.name not in inputs:
                    cams = load_cameras(g / "cameras.json")
                    gt = {v: read_mot(g / v / "gt" / "gt.txt").rows for v in sorted(cams.views)}
                    inputs[g.name] = (cams, gt, local_tracks(g, cache))
                cams, gt, tracks = inputs[g.name]
                per[g.name] = (gt, fuse(method, kwargs, cams, tracks))
            s = score_groups(per)
            done[method][label] = {k: {m: v[m] for m in KEYS} for k, v in s.items()}
            store.write_text(json.dumps(done[method], indent=1))
            print(f"mtmc_report: scored {method} {label}", file=sys.stderr)
    return done


def logo(done: dict, method: str) -> dict[str, tuple[str, dict]]:
    """Held-out group -> (setting chosen on the others by mean IDF1, its held-out scores)."""
    grid = done[method]
    groups = [g for g in next(iter(grid.values())) if g != "COMBINED"]
    out = {}
    for held in groups:
        rest = [g for g in groups if g != held]
        best = max(grid, key=lambda s: np.mean([grid[s][g]["IDF1"] for g in rest]))
        out[held] = (best, grid[best][held])
    return out


def report(done: dict) -> str:
    lines = []
    row = "{:<18}{:<26}" + "{:>7}" * len(KEYS)
    lines.append(row.format("group", "method", *KEYS))
    groups = list(next(iter(done["none"].values())))
    for g in groups:
        for method, grid in GRIDS.items():
            label = next(iter(grid))
            r = done[method][label][g]
            lines.append(row.format(g, f"{method} {label}", *(f"{100 * r[k]:.1f}" for k in KEYS)))
    lines.append("")
    lines.append("leave-one-group-out (setting chosen on the other groups by mean IDF1):")
    for method in ("fusion", "anchor"):
        held = logo(done, method)
        for g, (label, r) in held.items():
            lines.append(row.format(g, f"{method} {label}", *(f"{100 * r[k]:.1f}" for k in KEYS)))
        mean = [np.mean([r[k] for _, r in held.values()]) for k in KEYS]
        lines.append(row.format("mean held-out", method, *(f"{100 * m:.1f}" for m in mean)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.eval.mtmc_report", description=__doc__)
    default = Path(os.environ.get("VIGIL_EVAL_DATA", "../shared/data")) / "multicam"
    p.add_argument("--data", type=Path, default=default, help="folder of <group>/cameras.json")
    p.add_argument("--cache", type=Path, default=Path("/tmp/vigil-13"), help="cache folder")
    p.add_argument(
        "--method", nargs="+", choices=list(GRIDS), default=list(GRIDS), help="score only these"
    )
    p.add_argument("--no-report", action="store_true", help="score and cache only")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"mtmc_report: error: {args.data}: no such folder", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    done = scores(args.data, args.cache, args.method)
    if not args.no_report:
        print(report(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
