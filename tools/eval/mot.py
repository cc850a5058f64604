"""MOTChallenge files and tracking metrics: HOTA/DetA/AssA and MOTA/IDF1/ID switches.

HOTA follows TrackEval (Luiten et al., MIT licence) exactly: the same per-frame IoU, the same
global-alignment-weighted Hungarian matching, 19 alpha thresholds, and the MOT15 rules
(ground-truth rows whose confidence column is 0 are dropped; no distractor removal). It is
implemented here because TrackEval's PyPI wheel pulls in the GUI build of OpenCV, which
clashes with the headless OpenCV the unit uses; the test suite cross-checks it against
TrackEval when that is importable. MOTA, IDF1 and ID switches come from py-motmetrics (its
accumulator and metrics; IoU distances computed here because its own IoU helper uses a
function NumPy 2 removed). Both must reproduce the motmetrics oracle before figures count.

Usage: ``python -m tools.eval.mot --gt-root ../shared/data/mot15 --results DIR`` where
DIR holds ``<Sequence>.txt`` result files.
"""

from __future__ import annotations

import argparse
import configparser
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's 19 localisation thresholds


# ----------------------------------------------------------------------------- files
@dataclass
class MotFile:
    """Rows of a MOTChallenge text file: (N, 10) float64, plus what was skipped and why."""

    rows: np.ndarray
    lines: int = 0
    skipped: dict[str, list[int]] = field(default_factory=dict)  # reason -> line numbers

    @property
    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def skip_summary(self) -> str:
        """One line: how many lines were skipped for each reason, with the first line numbers."""
        parts = []
        for why, nums in self.skipped.items():
            shown = ", ".join(str(n) for n in nums[:5]) + (", ..." if len(nums) > 5 else "")
            parts.append(f"{len(nums)} {why} (line {shown})")
        return "; ".join(parts)


def read_mot(path: str | Path, *, max_frame: int | None = None) -> MotFile:
    """Parse a MOTChallenge file (``frame,id,x,y,w,h,score[,...]``), tolerating bad lines.

    Blank lines and ``#`` comments are ignored. Lines with fewer than 6 fields or a
    non-numeric field, frames that are not positive integers (or past ``max_frame``), boxes
    of zero or negative size and non-finite values are skipped and counted by reason
    (``MotFile.skipped``) so the caller can report them; a missing score column reads as 1.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    rows: list[list[float]] = []
    skipped: dict[str, list[int]] = {}
    n_lines = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        n_lines += 1
        why = None
        parts = [p.strip() for p in line.replace(";", ",").split(",")]
        if len(parts) == 1:
            parts = line.split()  # whitespace-separated variant
        if len(parts) < 6:
            why = "malformed: fewer than 6 fields"
        else:
            try:
                vals = [float(p) for p in parts[:10]]
            except ValueError:
                why = "malformed: non-numeric field"
            else:
                vals += [1.0, -1.0, -1.0, -1.0][len(vals) - 6 :] if len(vals) < 10 else []
                frame = vals[0]
                if not all(math.isfinite(v) for v in vals[:7]):
                    why = "NaN or infinite value"
                elif frame < 1 or frame != int(frame):
                    why = "frame not a positive integer"
                elif max_frame is not None and frame > max_frame:
                    why = "frame past the sequence length"
                elif vals[4] <= 0 or vals[5] <= 0:
                    why = "box of zero or negative size"
        if why is not None:
            skipped.setdefault(why, []).append(lineno)
            continue
        rows.append(vals)
    arr = np.asarray(rows, np.float64).reshape(-1, 10)
    return MotFile(arr, n_lines, skipped)


def read_seqinfo(path: str | Path) -> dict[str, float | int | str]:
    """``frameRate`` (required, > 0), ``seqLength``, ``imWidth``, ``imHeight`` and ``name``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (seqinfo.ini)")
    cp = configparser.ConfigParser()
    try:
        cp.read(path, encoding="utf-8")
    except configparser.Error as e:
        raise ValueError(f"{path}: not a valid seqinfo.ini: {e}") from None
    if not cp.has_section("Sequence"):
        raise ValueError(f"{path}: no [Sequence] section")
    sec = cp["Sequence"]
    out: dict[str, float | int | str] = {"name": sec.get("name", path.parent.name)}
    try:
        fps = float(sec["frameRate"])
    except KeyError:
        raise ValueError(f"{path}: [Sequence] has no frameRate") from None
    except ValueError:
        raise ValueError(f"{path}: frameRate {sec['frameRate']!r} is not a number") from None
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"{path}: frameRate must be a positive number, got {sec['frameRate']}")
    out["frameRate"] = fps
    for key in ("seqLength", "imWidth", "imHeight"):
        if key in sec:
            try:
                out[key] = int(sec[key])
            except ValueError:
                raise ValueError(f"{path}: {key} {sec[key]!r} is not an integer") from None
            if out[key] <= 0:  # type: ignore[operator]
                raise ValueError(f"{path}: {key} must be positive, got {sec[key]}")
    return out


# ----------------------------------------------------------------------------- metrics
def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N,4) and (M,4) x,y,w,h boxes, as TrackEval computes it for MOTChallenge."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    eps = np.finfo(float).eps
    iou = np.where(union > eps, inter / np.maximum(union, eps), 0.0)
    iou[inter <= eps] = 0.0
    return np.clip(iou, 0.0, 1.0)


@dataclass
class SeqData:
    """One sequence prepared for scoring: per frame, gt and tracker ids and boxes."""

    gt_ids: list[np.ndarray]
    gt_boxes: list[np.ndarray]
    tr_ids: list[np.ndarray]
    tr_boxes: list[np.ndarray]


def prepare(gt: np.ndarray, res: np.ndarray, num_frames: int | None = None) -> SeqData:
    """Split rows by frame (1..num_frames); gt rows with confidence 0 are dropped (MOT15)."""
    gt = gt[gt[:, 6] != 0]
    if num_frames is None:
        num_frames = int(max(gt[:, 0].max(initial=0), res[:, 0].max(initial=0)))
    out = SeqData([], [], [], [])
    for rows, ids, boxes in ((gt, out.gt_ids, out.gt_boxes), (res, out.tr_ids, out.tr_boxes)):
        frames = rows[:, 0].astype(np.int64)
        order = np.argsort(frames, kind="stable")
        rows, frames = rows[order], frames[order]
        bounds = np.searchsorted(frames, np.arange(1, num_frames + 2))
        for t in range(num_frames):
            r = rows[bounds[t] : bounds[t + 1]]
            ids.append(r[:, 1].astype(np.int64))
            boxes.append(r[:, 2:6])
    for t, ids in enumerate(out.tr_ids):
        if np.unique(ids).size != ids.size:
            raise ValueError(f"tracker output repeats an id within frame {t + 1}")
    return out


def hota(data: SeqData) -> dict[str, np.ndarray]:
    """TrackEval's HOTA for one sequence: per-alpha arrays HOTA_TP/FN/FP, AssA, LocA, ..."""
    n_a = len(ALPHAS)
    res = {k: np.zeros(n_a) for k in ("HOTA_TP", "HOTA_FN", "HOTA_FP", "AssA", "AssRe", "AssPr")}
    res["LocA"] = np.zeros(n_a)
    gt_u, gt_ids = _relabel(data.gt_ids)
    tr_u, tr_ids = _relabel(data.tr_ids)
    n_gt_dets = sum(x.size for x in gt_ids)
    n_tr_dets = sum(x.size for x in tr_ids)
    if n_tr_dets == 0 or n_gt_dets == 0:
        res["HOTA_FN"][:] = n_gt_dets
        res["HOTA_FP"][:] = n_tr_dets
        res["LocA"][:] = 1.0
        return _final(res)
    sims = [box_iou_xywh(g, r) for g, r in zip(data.gt_boxes, data.tr_boxes, strict=True)]
    potential = np.zeros((gt_u, tr_u))
    gt_count = np.zeros((gt_u, 1))
    tr_count = np.zeros((1, tr_u))
    eps = np.finfo(float).eps
    for g, r, sim in zip(gt_ids, tr_ids, sims, strict=True):
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        sim_iou = np.zeros_like(sim)
        mask = denom > 0 + eps
        sim_iou[mask] = sim[mask] / denom[mask]
        potential[g[:, None], r[None, :]] += sim_iou
        gt_count[g] += 1
        tr_count[0, r] += 1
    global_align = potential / (gt_count + tr_count - potential)
    matches = np.zeros((n_a, gt_u, tr_u))
    for g, r, sim in zip(gt_ids, tr_ids, sims, strict=True):
        if g.size == 0 or r.size == 0:
            res["HOTA_FP"] += r.size
            res["HOTA_FN"] += g.size
            continue
        score = global_align[g[:, None], r[None, :]] * sim
        rows, cols = linear_sum_assignment(-score)
        s = sim[rows, cols]
        for a, alpha in enumerate(ALPHAS):
            ok = s >= alpha - eps
            n = int(ok.sum())
            res["HOTA_TP"][a] += n
            res["HOTA_FN"][a] += g.size - n
            res["HOTA_FP"][a] += r.size - n
            if n:
                res["LocA"][a] += s[ok].sum()
                matches[a, g[rows[ok]], r[cols[ok]]] += 1
    for a in range(n_a):
        m = matches[a]
        tp = np.maximum(1, res["HOTA_TP"][a])
        res["AssA"][a] = np.sum(m * m / np.maximum(1, gt_count + tr_count - m)) / tp
        res["AssRe"][a] = np.sum(m * m / np.maximum(1, gt_count)) / tp
        res["AssPr"][a] = np.sum(m * m / np.maximum(1, tr_count)) / tp
    res["LocA"] = np.maximum(1e-10, res["LocA"]) / np.maximum(1e-10, res["HOTA_TP"])
    return _final(res)


def combine_hota(per_seq: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """TrackEval's combination over sequences: counts summed, AssA/LocA weighted by TP."""
    res = {k: sum(r[k] for r in per_seq) for k in ("HOTA_TP", "HOTA_FN", "HOTA_FP")}
    tp = np.maximum(1.0, res["HOTA_TP"])
    for k in ("AssA", "AssRe", "AssPr"):
        res[k] = sum(r[k] * r["HOTA_TP"] for r in per_seq) / tp
    loca = sum(r["LocA"] * r["HOTA_TP"] for r in per_seq)
    res["LocA"] = np.maximum(1e-10, loca) / np.maximum(1e-10, res["HOTA_TP"])
    return _final(res)


def _final(res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    res["DetRe"] = tp / np.maximum(1, tp + fn)
    res["DetPr"] = tp / np.maximum(1, tp + fp)
    res["DetA"] = tp / np.maximum(1, tp + fn + fp)
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    return res


def _relabel(ids_per_frame: list[np.ndarray]) -> tuple[int, list[np.ndarray]]:
    allids = np.concatenate(ids_per_frame) if ids_per_frame else np.zeros(0, np.int64)
    uniq, inv = np.unique(allids, return_inverse=True)
    out, pos = [], 0
    for ids in ids_per_frame:
        out.append(inv[pos : pos + ids.size].astype(np.intp))
        pos += ids.size
    return int(uniq.size), out


def clear_accumulator(data: SeqData, iou_threshold: float = 0.5):
    """py-motmetrics accumulator for one sequence, matching at IoU >= ``iou_threshold``."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    for t, (g, gb, r, rb) in enumerate(
        zip(data.gt_ids, data.gt_boxes, data.tr_ids, data.tr_boxes, strict=True)
    ):
        if g.size == 0 and r.size == 0:
            continue  # motmetrics only sees frames present in either file
        if g.size and r.size:
            dist = 1.0 - box_iou_xywh(gb, rb)
            dist = np.where(dist > 1.0 - iou_threshold, np.nan, dist)
        else:
            dist = np.empty((g.size, r.size))
        acc.update(g, r, dist, frameid=t + 1)
    return acc


CLEAR_METRICS = [
    "idf1", "idp", "idr", "recall", "precision", "num_unique_objects", "mostly_tracked",
    "partially_tracked", "mostly_lost", "num_false_positives", "num_misses",
    "num_switches", "num_fragmentations", "mota", "motp",
]  # fmt: skip


def evaluate(sequences: dict[str, tuple[np.ndarray, np.ndarray, int | None]]) -> dict[str, dict]:
    """Metrics per sequence and ``COMBINED``: {name: {HOTA, DetA, AssA, LocA, MOTA, IDF1, IDsw, ...}}.

    ``sequences`` maps a name to (gt rows, result rows, number of frames or None).
    HOTA-family values are the mean over the alphas, as TrackEval reports them.
    """
    import motmetrics as mm

    names, accs, hotas = [], [], []
    for name, (gt, res, n) in sequences.items():
        data = prepare(gt, res, n)
        names.append(name)
        hotas.append(hota(data))
        accs.append(clear_accumulator(data))
    mh = mm.metrics.create()
    summary = mh.compute_many(accs, names=names, metrics=CLEAR_METRICS, generate_overall=True)
    out: dict[str, dict] = {}
    for name, h in [*zip(names, hotas, strict=True), ("COMBINED", combine_hota(hotas))]:
        row = summary.loc[name if name != "COMBINED" else "OVERALL"]
        out[name] = {
            "HOTA": float(h["HOTA"].mean()),
            "DetA": float(h["DetA"].mean()),
            "AssA": float(h["AssA"].mean()),
            "LocA": float(h["LocA"].mean()),
            "MOTA": float(row["mota"]),
            "IDF1": float(row["idf1"]),
            "IDsw": int(row["num_switches"]),
            "FP": int(row["num_false_positives"]),
            "FN": int(row["num_misses"]),
            "MOTP": float(row["motp"]),
            "_row": {k: row[k] for k in CLEAR_METRICS},
        }
    return out


def format_table(results: dict[str, dict], title: str = "") -> str:
    """Fixed-width table, percentages for the ratio metrics."""
    head = f"{'sequence':<16}{'HOTA':>7}{'DetA':>7}{'AssA':>7}{'MOTA':>7}{'IDF1':>7}{'IDsw':>6}"
    lines = ([title] if title else []) + [head]
    for name, r in results.items():
        lines.append(
            f"{name:<16}{100 * r['HOTA']:7.2f}{100 * r['DetA']:7.2f}{100 * r['AssA']:7.2f}"
            f"{100 * r['MOTA']:7.2f}{100 * r['IDF1']:7.2f}{r['IDsw']:6d}"
        )
    return "\n".join(lines)


def load_mot_sequences(gt_root: Path, results_dir: Path) -> dict:
    """Pair ``gt_root/<Seq>/gt/gt.txt`` with ``results_dir/<Seq>.txt`` for every result file."""
    seqs = {}
    for res_path in sorted(results_dir.glob("*.txt")):
        seq_dir = gt_root / res_path.stem
        gt_path = seq_dir / "gt" / "gt.txt"
        if not gt_path.is_file():
            raise FileNotFoundError(f"{res_path}: no ground truth at {gt_path}")
        info = seq_dir / "seqinfo.ini"
        n = read_seqinfo(info).get("seqLength") if info.is_file() else None
        seqs[res_path.stem] = (read_mot(gt_path).rows, read_mot(res_path).rows, n)
    if not seqs:
        raise FileNotFoundError(f"{results_dir}: no <Sequence>.txt result files")
    return seqs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.eval.mot", description=__doc__.splitlines()[0]
    )
    p.add_argument("--gt-root", type=Path, required=True, help="folder with <Seq>/gt/gt.txt")
    p.add_argument("--results", type=Path, required=True, help="folder with <Seq>.txt results")
    args = p.parse_args(argv)
    try:
        results = evaluate(load_mot_sequences(args.gt_root, args.results))
    except (OSError, ValueError) as e:
        print(f"mot: error: {e}", file=sys.stderr)
        return 2
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
