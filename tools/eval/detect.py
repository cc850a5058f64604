"""Person detection accuracy: AP50 and AP50:95 (pycocotools), precision and recall at the
unit's operating threshold, on COCO128 (YOLO labels) or the CAVIAR INRIA frames (CAVIAR XML).

    python -m tools.eval.detect --dataset caviar [--dets DETS.json | --model NAME --tiles 2 2]

Without ``--dets`` it runs the unit's detector itself (as ``vigil-eval detect`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

PERSON = 1


def coco128_ground_truth(root: Path) -> tuple[Path, dict]:
    """(images folder, COCO GT dict of persons) from COCO128's YOLO labels (class 0 = person)."""
    import cv2

    images = root / "images" / "train2017"
    gt = _empty_gt()
    for f in sorted(images.glob("*.jpg")):
        h, w = cv2.imread(str(f)).shape[:2]
        gt["images"].append({"id": f.stem, "width": w, "height": h})
        label = root / "labels" / "train2017" / f"{f.stem}.txt"
        if not label.exists():
            continue
        rows = np.loadtxt(label, ndmin=2)
        for _c, cx, cy, bw, bh in rows[rows[:, 0] == 0][:, :5]:
            _add_box(gt, f.stem, (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h)
    return images, gt


def caviar_ground_truth(inria: Path) -> tuple[Path, dict]:
    """(frames folder, COCO GT dict) for the CAVIAR INRIA frames; image ids ``Seq/0236``."""
    frames = inria / "frames"
    xml_by_seq = {p.parent.name: p for p in (inria / "gt").glob("*/*/*.xml")}
    wanted: dict[str, set[int]] = {}
    with open(frames / "mapping.csv", newline="") as f:
        for row in csv.DictReader(f):
            wanted.setdefault(row["sequence"], set()).add(int(row["frame_number_in_gt_xml"]))
    gt = _empty_gt()
    for seq, numbers in sorted(wanted.items()):
        root = ET.parse(xml_by_seq[seq]).getroot()
        boxes: dict[int, list] = {}
        for fr in root.iter("frame"):
            n = int(fr.get("number"))
            if n not in numbers:
                continue
            objs = fr.find("objectlist")
            boxes[n] = [o.find("box").attrib for o in (objs if objs is not None else [])]
        for n in sorted(numbers):
            iid = f"{seq}/{n:04d}"
            if not (frames / f"{iid}.jpg").exists():
                continue
            gt["images"].append({"id": iid, "width": 384, "height": 288})
            for b in boxes.get(n, []):
                w, h = float(b["w"]), float(b["h"])
                _add_box(gt, iid, float(b["xc"]) - w / 2, float(b["yc"]) - h / 2, w, h)
    return frames, gt


def _empty_gt() -> dict:
    return {
        "info": {},
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": [{"id": PERSON, "name": "person"}],
    }


def _add_box(gt: dict, iid: str, x: float, y: float, w: float, h: float) -> None:
    gt["annotations"].append(
        {
            "id": len(gt["annotations"]) + 1,
            "image_id": iid,
            "category_id": PERSON,
            "bbox": [x, y, w, h],
            "area": w * h,
            "iscrowd": 0,
        }
    )


def person_metrics(gt: dict, dets: list[dict], threshold: float) -> dict:
    """AP50, AP50:95 (pycocotools, person) and precision/recall at IoU 0.5 above ``threshold``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    known = {im["id"] for im in gt["images"]}
    people = [d for d in dets if d["category_id"] == PERSON and d["image_id"] in known]
    out = {"images": len(known), "gt_people": len(gt["annotations"]), "detections": len(people)}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        if people:
            e = COCOeval(coco, coco.loadRes(people), "bbox")
            e.params.catIds = [PERSON]
            e.evaluate()
            e.accumulate()
            e.summarize()
    out["AP50"] = float(e.stats[1]) if people else 0.0
    out["AP50_95"] = float(e.stats[0]) if people else 0.0
    tp = fp = 0
    by_img: dict[str, list] = {}
    for a in gt["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a["bbox"])
    for iid in known:
        g = _xyxy(np.asarray(by_img.get(iid, []), np.float32).reshape(-1, 4))
        ds = sorted(
            (d for d in people if d["image_id"] == iid and d["score"] >= threshold),
            key=lambda d: -d["score"],
        )
        used = np.zeros(len(g), bool)
        for d in ds:
            if len(g):
                iou = _iou(_xyxy(np.asarray([d["bbox"]], np.float32))[0], g)
                iou[used] = 0
                j = int(iou.argmax())
                if iou[j] >= 0.5:
                    used[j] = True
                    tp += 1
                    continue
            fp += 1
    out["threshold"] = threshold
    out["precision"] = tp / max(tp + fp, 1)
    out["recall"] = tp / max(len(gt["annotations"]), 1)
    return out


def _xyxy(b: np.ndarray) -> np.ndarray:
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:2], b[:, :2])
    rb = np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), 1)
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def main(argv: list[str] | None = None) -> int:
    from firmware.detect import DetectorConfig
    from firmware.paths import MODELS_DIR, eval_data_dir

    p = argparse.ArgumentParser(
        prog="python -m tools.eval.detect", description=__doc__.splitlines()[0]
    )
    p.add_argument("--dataset", choices=["coco128", "caviar"], required=True)
    p.add_argument(
        "--data", type=Path, default=None, help="evaluation data root (default $VIGIL_EVAL_DATA)"
    )
    p.add_argument("--dets", type=Path, help="COCO results JSON from `vigil-eval detect`")
    p.add_argument("--model", help="run this model instead of the default (when no --dets)")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p.add_argument("--tiles", type=int, nargs=2, metavar=("COLS", "ROWS"), help="override tiling")
    p.add_argument("--no-full-frame", action="store_true", help="with tiles: tiles only")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--threshold",
        type=float,
        default=DetectorConfig().score_threshold,
        help="operating threshold for precision/recall (default: the unit's)",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = p.parse_args(argv)
    data = args.data or eval_data_dir()
    if args.dataset == "coco128":
        images, gt = coco128_ground_truth(data / "coco128")
    else:
        images, gt = caviar_ground_truth(data / "caviar" / "inria")
    if args.dets:
        dets = json.loads(args.dets.read_text())
        name = str(args.dets)
    else:
        from firmware.detect import load_detector
        from tools.eval.run_detect import detections_json

        upd = {}
        if args.model:
            upd["model"] = args.model
        if args.tiles:
            upd["tiles"] = tuple(args.tiles)
        if args.no_full_frame:
            upd["full_frame"] = False
        if args.threads:
            upd["threads"] = args.threads
        cfg = DetectorConfig().model_copy(update=upd)
        cfg = DetectorConfig.model_validate(cfg.model_dump())
        det = load_detector(cfg, models_dir=args.models_dir)
        dets = detections_json(det, images, lambda m: print(m, file=sys.stderr))
        name = f"{det.name} tiles={cfg.tiles} full_frame={cfg.full_frame}"
    m = person_metrics(gt, dets, args.threshold)
    if args.json:
        print(json.dumps({"dataset": args.dataset, "model": name, **m}))
    else:
        print(
            f"{args.dataset}: {name}: person AP50 {m['AP50']:.3f}  AP50:95 {m['AP50_95']:.3f}  "
            f"P {m['precision']:.3f} R {m['recall']:.3f} @ {m['threshold']:.2f}  "
            f"({m['images']} images, {m['gt_people']} people, {m['detections']} detections)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
