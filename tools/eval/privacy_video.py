"""The video side of the privacy evaluation: the unit's own path (``vigil-eval anonymise
--video``: detector, tracker, anonymiser in frame order, default config) on real footage.

CAVIAR INRIA: each sequence's evaluation frames, in order, as one camera's frame folder;
heads covered and the non-person area changed, from the pixels the output changed.
CAVIAR Lisbon clips (no person boxes): the share of every frame's pixels changed, mean and
p90 (people included, so an upper bound on the scene side). Halves as in
``tools.eval.privacy.HALVES``; Lisbon clips alternate in sorted order. Usage::

    python -m tools.eval.privacy_video [--inria] [--lisbon] [--max-frames N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from firmware.paths import eval_data_dir
from tools.eval.privacy import (
    HALVES,
    NONPERSON_TARGET,
    half_of,
    head_coverage,
    load_frames,
    person_area,
    print_table,
    summarise,
)
from tools.eval.run_anonymise import anonymise_video

LISBON_HALVES = {
    "A": ("EnterExitCrossingPaths1front", "OneLeaveShopReenter1front", "TwoLeaveShop2front"),
    "B": ("EnterExitCrossingPaths2front", "OneLeaveShopReenter2front"),
}


def changed_pixels(masked: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Boolean (H, W): pixels the anonymiser changed."""
    return (masked != original).any(axis=2)


def inria_rows(loaded, samples, progress: bool = True) -> list[tuple]:
    """Per evaluation frame, through the video path: rows for ``privacy.summarise``."""
    by_image = {s.image: s for s in samples}
    rows: list[tuple] = []
    for seq in sorted({s.sequence for s in samples}):
        folder = next(s.image.parent for s in samples if s.sequence == seq)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg")

        def hook(masked, frame, tracks, files=files):
            s = by_image.get(files[frame.index]) if frame.index < len(files) else None
            if s is None:
                return
            ch = changed_pixels(masked, frame.image)
            outside = ~person_area(ch.shape, s.persons)
            rows.append(
                (s, head_coverage(ch, s.heads), ch.mean(), (ch & outside).sum(), outside.sum(), 0)
            )

        anonymise_video(folder, None, loaded, on_frame=hook)
        if progress:
            print(f"  video path: {seq} done ({len(rows)} frames)", file=sys.stderr)
    return rows


def lisbon(loaded, max_frames: int | None = None, progress: bool = True) -> dict:
    """Changed-pixel share per Lisbon clip through the video path, and per half."""
    clips = sorted((eval_data_dir() / "caviar" / "lisbon" / "videos").glob("*.mpg"))
    if not clips:
        raise FileNotFoundError("CAVIAR Lisbon clips not found (set VIGIL_EVAL_DATA)")
    per: dict[str, np.ndarray] = {}
    for clip in clips:
        shares: list[float] = []

        def hook(masked, frame, tracks, shares=shares):
            if max_frames is None or frame.index < max_frames:
                shares.append(float(changed_pixels(masked, frame.image).mean()))

        n = anonymise_video(clip, None, loaded, on_frame=hook)
        per[clip.stem] = np.array(shares)
        if progress:
            print(
                f"  {clip.stem}: {n} frames, {per[clip.stem].mean():.1%} changed", file=sys.stderr
            )
    out: dict = {"clips": {}}
    for name, v in per.items():
        out["clips"][name] = {"frames": len(v), "changed": float(v.mean()),
                              "changed_p90": float(np.percentile(v, 90))}  # fmt: skip
    groups = {"all": list(per), **{h: [c for c in per if c in v] for h, v in LISBON_HALVES.items()}}
    for g, names in groups.items():
        v = np.concatenate([per[c] for c in names]) if names else np.zeros(0)
        out[g] = {"clips": len(names), "frames": int(v.size),
                  "changed": float(v.mean()) if v.size else float("nan"),
                  "changed_p90": float(np.percentile(v, 90)) if v.size else float("nan")}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.eval.privacy_video", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--inria", action="store_true", help="only the CAVIAR INRIA sequences")
    ap.add_argument("--lisbon", action="store_true", help="only the CAVIAR Lisbon clips")
    ap.add_argument("--max-frames", type=int, default=None, help="Lisbon: score the first N")
    ap.add_argument("--config", help="site config (default: the unit's default config)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    from firmware.config import default, load

    loaded = load(args.config) if args.config else default()
    both = not (args.inria or args.lisbon)
    result: dict = {}
    try:
        if args.inria or both:
            rows = inria_rows(loaded, load_frames())
            r = {"method": "vigil --video", **summarise(rows)}
            for h in HALVES:
                r[h] = summarise([x for x in rows if half_of(x[0].sequence) == h])
            result["inria"] = r
            print_table([r])
            met = r["heads_covered_95"] >= 0.99 and r["nonperson_changed"] <= NONPERSON_TARGET
            print(f"INRIA video path targets: {'MET' if met else 'NOT MET'}")
            for m in r["misses"][:20]:
                print(f"  missed: {m}")
        if args.lisbon or both:
            result["lisbon"] = lb = lisbon(loaded, args.max_frames)
            print(f"{'Lisbon clip':<30} {'frames':>6} {'changed':>8} {'p90':>6}")
            for name, v in (*lb["clips"].items(), *((g, lb[g]) for g in ("all", "A", "B"))):
                print(f"{name:<30} {v['frames']:>6} {v['changed']:>8.2%} {v['changed_p90']:>6.1%}")
    except FileNotFoundError as e:
        print(f"privacy video eval: {e}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
