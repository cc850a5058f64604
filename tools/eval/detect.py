"""Person detection accuracy: AP50 and AP50:95 (pycocotools), precision and recall at the
unit's operating threshold, on COCO128 (YOLO labels) or the CAVIAR INRIA frames (CAVIAR XML).

    python -m tools.eval.detect --dataset caviar [--dets DETS.json | --model NAME --tiles 2 2]
                                [--no-background] [--no-flip]

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


def yolo_ground_truth(split: Path) -> tuple[Path, dict]:
    """(images folder, COCO GT dict) for a YOLO split whose every class is a person
    (``train/cctv-clinic/valid``: a validation split, never used for calibration)."""
    import cv2

    gt = _empty_gt()
    for f in sorted((split / "images").glob("*.jpg")):
        h, w = cv2.imread(str(f)).shape[:2]
        gt["images"].append({"id": f.stem, "width": w, "height": h})
        label = split / "labels" / f"{f.stem}.txt"
        if label.exists() and label.stat().st_size:
            for _c, cx, cy, bw, bh in np.loadtxt(label, ndmin=2)[:, :5]:
                _add_box(gt, f.stem, (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h)
    return split / "images", gt


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


def pose_detections(model: str, models_dir: Path, images: Path) -> list[dict]:
    """COCO results of a pose model used as a person detector on the whole frame."""
    import cv2

    from firmware.detect import load_pose
    from tools.eval.run_detect import image_files, image_id

    pose = load_pose(model, models_dir, min_pose_score=0.05)
    res = []
    for f in image_files(images):
        boxes, scores, _ = pose.poses(cv2.imread(str(f)))
        for (x1, y1, x2, y2), sc in zip(boxes.tolist(), scores.tolist(), strict=True):
            res.append(
                {
                    "image_id": image_id(images, f),
                    "category_id": PERSON,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": sc,
                }
            )
    return res


def pose_agreement(a: str, b: str, models_dir: Path, images: Path, gt: dict) -> dict:
    """How far model ``a``'s keypoints are from model ``b``'s on the ground-truth people
    (boxes over 1% of the image), relative to the box's longer side; keypoints that ``b``
    scores >= 0.3."""
    import cv2

    from firmware.detect import load_pose

    pa, pb = load_pose(a, models_dir), load_pose(b, models_dir)
    sizes = {im["id"]: im["width"] * im["height"] for im in gt["images"]}
    by_img: dict[str, list] = {}
    for ann in gt["annotations"]:
        if ann["area"] > 0.01 * sizes[ann["image_id"]]:
            by_img.setdefault(ann["image_id"], []).append(ann["bbox"])
    errs, vis_a, vis_b = [], 0, 0
    for iid, bbs in by_img.items():
        img = cv2.imread(str(next(images.glob(f"{iid}.*"))))
        boxes = _xyxy(np.asarray(bbs, np.float32))
        ka, kb = pa.estimate(img, boxes), pb.estimate(img, boxes)
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None]
        ok = kb[:, :, 2] >= 0.3
        d = np.hypot(ka[:, :, 0] - kb[:, :, 0], ka[:, :, 1] - kb[:, :, 1]) / side
        errs.append(d[ok & ~np.isnan(d)])
        vis_a += int(np.nansum(ka[:, :, 2] >= 0.3))
        vis_b += int(ok.sum())
    e = np.concatenate(errs)
    return {
        "people": sum(len(v) for v in by_img.values()),
        "keypoints": int(e.size),
        "median_dist_over_box": float(np.median(e)),
        "p90_dist_over_box": float(np.percentile(e, 90)),
        "confident_keypoints_a": vis_a,
        "confident_keypoints_b": vis_b,
    }


def _contains(b: np.ndarray, x: float, y: float) -> bool:
    return bool(((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3])).any())


def face_recall_proxy(model: str, models_dir: Path, images: Path, gt: dict) -> dict:
    """No face ground truth is available: count the ground-truth people (boxes over 1% of the
    image) whose nose and both eyes the pose model sees (score >= 0.5), and how many of those
    get a face box containing the nose, from the whole frame and from head regions."""
    import cv2

    from firmware.detect import load_face_detector, load_pose

    face, pose = load_face_detector(model, models_dir), load_pose(models_dir=models_dir)
    sizes = {im["id"]: im["width"] * im["height"] for im in gt["images"]}
    by_img: dict[str, list] = {}
    for ann in gt["annotations"]:
        if ann["area"] > 0.01 * sizes[ann["image_id"]]:
            by_img.setdefault(ann["image_id"], []).append(ann["bbox"])
    seen = whole = regions = 0
    for iid, bbs in by_img.items():
        img = cv2.imread(str(next(images.glob(f"{iid}.*"))))
        boxes = _xyxy(np.asarray(bbs, np.float32))
        kp = pose.estimate(img, boxes)
        fb, _ = face.detect(img)
        heads = boxes.copy()
        heads[:, 3] = boxes[:, 1] + 0.4 * (boxes[:, 3] - boxes[:, 1])
        rb, _ = face.detect(img, regions=heads)
        for k in kp:
            if np.isnan(k).any() or (k[:3, 2] < 0.5).any():
                continue
            seen += 1
            whole += _contains(fb, k[0, 0], k[0, 1])
            regions += _contains(rb, k[0, 0], k[0, 1])
    return {
        "people_with_visible_face": seen,
        "found_whole_frame": whole,
        "found_in_head_regions": regions,
        "recall_whole_frame": whole / max(seen, 1),
        "recall_head_regions": regions / max(seen, 1),
    }


def main(argv: list[str] | None = None) -> int:
    from firmware.detect import DetectorConfig
    from firmware.paths import MODELS_DIR, eval_data_dir

    p = argparse.ArgumentParser(
        prog="python -m tools.eval.detect", description=__doc__.splitlines()[0]
    )
    p.add_argument("--dataset", choices=["coco128", "caviar", "cctv-clinic-valid"], required=True)
    p.add_argument(
        "--data", type=Path, default=None, help="evaluation data root (default $VIGIL_EVAL_DATA)"
    )
    p.add_argument("--dets", type=Path, help="COCO results JSON from `vigil-eval detect`")
    p.add_argument("--model", help="run this model instead of the default (when no --dets)")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p.add_argument("--tiles", type=int, nargs=2, metavar=("COLS", "ROWS"), help="override tiling")
    p.add_argument("--no-full-frame", action="store_true", help="with tiles: tiles only")
    p.add_argument(
        "--no-background", action="store_true", help="without the static-scene (background) prior"
    )
    p.add_argument(
        "--no-flip",
        action="store_true",
        help="without the test-time flip (one inference per window)",
    )
    p.add_argument(
        "--live-background",
        action="store_true",
        help="learn each camera's background online in file order (as a unit does) instead of "
        "warming it up from all of the camera's images first",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--threshold",
        type=float,
        default=DetectorConfig().score_threshold,
        help="operating threshold for precision/recall (default: the unit's)",
    )
    p.add_argument(
        "--pose", metavar="MODEL", help="score a pose model's whole-frame people instead"
    )
    p.add_argument(
        "--pose-agreement",
        nargs=2,
        metavar=("INT8", "FLOAT"),
        help="keypoints of two pose models on the ground-truth people: median distance / box size",
    )
    p.add_argument(
        "--face", metavar="MODEL", help="face recall proxy for a face model (see face_recall_proxy)"
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = p.parse_args(argv)
    data = args.data or eval_data_dir()
    if args.dataset == "coco128":
        images, gt = coco128_ground_truth(data / "coco128")
    elif args.dataset == "cctv-clinic-valid":
        images, gt = yolo_ground_truth(data / "train" / "cctv-clinic" / "valid")
    else:
        images, gt = caviar_ground_truth(data / "caviar" / "inria")
    if args.face:
        print(json.dumps(face_recall_proxy(args.face, args.models_dir, images, gt)))
        return 0
    if args.pose_agreement:
        print(json.dumps(pose_agreement(*args.pose_agreement, args.models_dir, images, gt)))
        return 0
    if args.dets:
        dets = json.loads(args.dets.read_text())
        name = str(args.dets)
    elif args.pose:
        dets = pose_detections(args.pose, args.models_dir, images)
        name = f"{args.pose} (whole-frame MultiPose people)"
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
        if args.no_background:
            upd["background"] = False
        if args.no_flip:
            upd["flip_test"] = False
        cfg = DetectorConfig().model_copy(update=upd)
        cfg = DetectorConfig.model_validate(cfg.model_dump())
        det = load_detector(cfg, models_dir=args.models_dir)
        dets = detections_json(
            det, images, lambda m: print(m, file=sys.stderr), live=args.live_background
        )
        bg = ("live" if args.live_background else "on") if cfg.background else "off"
        name = (
            f"{det.name} tiles={cfg.tiles} full_frame={cfg.full_frame} background={bg} "
            f"flip={'on' if cfg.flip_test else 'off'}"
        )
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
