"""Re-fit NanoDet's person score for elevated store cameras (conversion venv only).

COCO-trained NanoDet scores people seen from a ceiling corner poorly. This keeps the whole
network and its box regression, and re-fits only the person column of each level's final
1x1 convolution (128 weights + bias per stride) on the ``train/cctv-*`` training folders
(never on the CAVIAR INRIA frames or COCO128 used for evaluation). Targets follow GFL's
quality focal loss: a cell whose centre lies in a person box is trained towards the IoU of
its own predicted box with that person, every other cell towards 0. Half-size 2x2 mosaics
teach the small, far-away people. Full-batch, fixed seed: the result is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tools.models import nanodet

PERSON_COL = 0  # person is class 0 of the 124 = 80 scores + 44 distribution channels


def training_items(data_dir: Path) -> list[tuple[Path, np.ndarray]]:
    """(image, person boxes as normalised xyxy) for every training image of train/cctv-*."""
    items = []
    for img in sorted((data_dir / "train").glob("*/train/images/*.jpg")):
        lab = img.parent.parent / "labels" / (img.stem + ".txt")
        rows = np.loadtxt(lab, ndmin=2) if lab.exists() and lab.stat().st_size else np.zeros((0, 5))
        cx, cy, w, h = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]  # every class is a person
        items.append((img, np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)))
    return items


def samples(items, rng: np.random.Generator):
    """Training inputs: each image stretched to 416, plus 2x2 mosaics of four images
    (half-size people); yields (1x416x416x3 float BGR, boxes in input pixels)."""
    s = nanodet.INPUT
    for f, b in items:
        img = cv2.resize(cv2.imread(str(f)), (s, s))
        yield img[None].astype(np.float32), b * s
    order = rng.permutation(len(items))
    for k in range(0, len(order) - 3, 4):
        canvas = np.zeros((s, s, 3), np.uint8)
        boxes = []
        for q, idx in enumerate(order[k : k + 4]):
            f, b = items[idx]
            ox, oy = (q % 2) * s // 2, (q // 2) * s // 2
            canvas[oy : oy + s // 2, ox : ox + s // 2] = cv2.resize(
                cv2.imread(str(f)), (s // 2, s // 2)
            )
            boxes.append(b * (s // 2) + [ox, oy, ox, oy])
        yield canvas[None].astype(np.float32), np.concatenate(boxes)


def final_convs(graph_def) -> list[tuple[str, str, str]]:
    """(weights const, bias const, feature tensor) of each level's final 1x1 conv, stride 8 first."""
    import tensorflow as tf

    nodes = {n.name: n for n in graph_def.node}
    found = []
    for n in graph_def.node:
        if n.op != "Conv2D":
            continue
        w = nodes[n.input[1].split(":")[0]]
        if w.op == "Const" and tuple(tf.make_ndarray(w.attr["value"].tensor).shape) == (
            1,
            1,
            128,
            124,
        ):
            add = next(
                m
                for m in graph_def.node
                if m.op in ("Add", "AddV2", "BiasAdd") and m.input[0].split(":")[0] == n.name
            )
            feat = n.input[0] if ":" in n.input[0] else n.input[0] + ":0"
            found.append((w.name, add.input[1].split(":")[0], feat))
    return found


def _iou_cells(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    lt = np.maximum(pred[:, None, :2], gt[None, :, :2])
    rb = np.minimum(pred[:, None, 2:], gt[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), 2)
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / np.maximum(area(pred)[:, None] + area(gt)[None, :] - inter, 1e-6)


LEVEL_RANGE = {8: (0, 64), 16: (64, 128), 32: (128, 1e9)}  # longer box side, input pixels


def assigned_targets(
    centres: np.ndarray, boxes: np.ndarray, gt: np.ndarray, stride: int
) -> np.ndarray:
    """Soft targets per cell: IoU of the cell's predicted box with the person it is assigned.

    A person is assigned to the one level whose size range holds its longer side, and there
    to the cells within 2.5 strides of its centre that lie inside it (centre sampling)."""
    lo, hi = LEVEL_RANGE[stride]
    side = np.maximum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1])
    g = gt[(side >= lo) & (side < hi)]
    if len(g) == 0:
        return np.zeros(len(centres), np.float32)
    gc = (g[:, :2] + g[:, 2:]) / 2
    near = np.abs(centres[:, None, :] - gc[None]).max(2) <= 2.5 * stride
    inside = (
        (centres[:, None, 0] > g[None, :, 0])
        & (centres[:, None, 0] < g[None, :, 2])
        & (centres[:, None, 1] > g[None, :, 1])
        & (centres[:, None, 1] < g[None, :, 3])
    )
    iou = np.where(near & inside, _iou_cells(boxes, g), 0)
    return iou.max(1).astype(np.float32)


def collect(graph_def, items, seed: int = 0, neg_keep: float = 0.05):
    """Per stride: features (n,128), targets (n,), sample weights (n,) and the current logits."""
    import tensorflow as tf

    from firmware.detect.nanodet import NanoDetDecoder
    from tools.models.tfjs import graph_function

    convs = final_convs(graph_def)
    feats_t = [c[2] for c in convs]
    fn = graph_function(graph_def, ["input_1:0"], feats_t + list(nanodet.OUTPUTS))
    dec = NanoDetDecoder((nanodet.INPUT, nanodet.INPUT))
    rng = np.random.default_rng(seed)
    per = {s: ([], [], []) for s in dec.strides}
    for x, gt in samples(items, rng):
        outs = [o.numpy() for o in fn(tf.constant(nanodet._normalise_nchw(x)))]
        feats, raw = outs[:3], outs[3:]
        for (cls, reg, centres, stride), ft in zip(
            dec.split(raw), sorted(feats, key=lambda a: -a.shape[1]), strict=True
        ):
            ft = ft.reshape(-1, 128)
            logits = reg.reshape(-1, 4, dec.bins)
            e = np.exp(logits - logits.max(2, keepdims=True))
            dist = (e @ dec._proj) / e.sum(2) * stride
            boxes = np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], 1)
            target = np.zeros(len(ft), np.float32)
            if len(gt):
                target = assigned_targets(centres, boxes, gt, stride)
            score = cls[:, PERSON_COL]
            keep = (target > 0) | (score > 0.05) | (rng.random(len(ft)) < neg_keep)
            weight = np.where((target > 0) | (score > 0.05), 1.0, 1.0 / neg_keep).astype(np.float32)
            per[stride][0].append(ft[keep].astype(np.float32))
            per[stride][1].append(target[keep])
            per[stride][2].append(weight[keep])
    return {s: tuple(np.concatenate(a) for a in v) for s, v in per.items()}


MIN_IOU = 0.5  # a cell whose own box overlaps its person less than this is a negative


def fit_level(x, t, w, w0, b0, l2=1e-2, steps=300, lr=0.005):
    """Quality focal loss (beta 2) by full-batch Adam from the COCO weights, with an L2 pull
    back to them so the detector stays a COCO person detector elsewhere."""
    t = np.where(t >= MIN_IOU, t, 0).astype(np.float32)
    params = np.concatenate([w0, [b0]]).astype(np.float32)
    start = params.copy()
    xa = np.concatenate([x, np.ones((len(x), 1), np.float32)], 1)
    m = v = np.zeros_like(params)
    norm = w.sum()
    for i in range(1, steps + 1):
        z = xa @ params
        p = 1 / (1 + np.exp(-z))
        # QFL = |t - p|^2 * BCE(p, t); gradient wrt z
        bce_g = p - t
        mod = (t - p) ** 2
        bce = -(t * np.log(p + 1e-9) + (1 - t) * np.log(1 - p + 1e-9))
        dmod = -2 * (t - p) * p * (1 - p)
        gz = w * (mod * bce_g + bce * dmod)
        g = xa.T @ gz / norm + l2 * (params - start)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        params -= lr * (m / (1 - 0.9**i)) / (np.sqrt(v / (1 - 0.999**i)) + 1e-8)
    return params[:-1].astype(np.float32), np.float32(params[-1])


def apply(graph_def, data_dir: Path, log=print, cache: Path | None = None) -> dict:
    """Re-fit the person columns in ``graph_def`` in place; returns a summary.

    ``cache``: an .npz of the collected cells, reused when present (same graph and data)."""
    import tensorflow as tf

    items = training_items(data_dir)
    if cache is not None and cache.exists():
        z = np.load(cache)
        data = {s: (z[f"x{s}"], z[f"t{s}"], z[f"w{s}"]) for s in (8, 16, 32)}
    else:
        data = collect(graph_def, items)
        if cache is not None:
            np.savez(
                cache,
                **{
                    f"{k}{s}": v
                    for s, (x, t, w) in data.items()
                    for k, v in zip("xtw", (x, t, w), strict=True)
                },
            )
    consts = {n.name: n for n in graph_def.node}
    summary = {"images": len(items)}
    for (wname, bname, _), stride in zip(final_convs_sorted(graph_def), (8, 16, 32), strict=True):
        W = tf.make_ndarray(consts[wname].attr["value"].tensor).copy()
        B = tf.make_ndarray(consts[bname].attr["value"].tensor).copy()
        x, t, w = data[stride]
        nw, nb = fit_level(x, t, w, W[0, 0, :, PERSON_COL], B[PERSON_COL])
        W[0, 0, :, PERSON_COL], B[PERSON_COL] = nw, nb
        consts[wname].attr["value"].tensor.CopyFrom(tf.make_tensor_proto(W))
        consts[bname].attr["value"].tensor.CopyFrom(tf.make_tensor_proto(B))
        summary[f"s{stride}"] = {"cells": int(len(x)), "positives": int((t > 0).sum())}
        log(f"finetune: stride {stride}: {len(x)} cells, {(t > 0).sum()} positive")
    return summary


def final_convs_sorted(graph_def):
    """final_convs ordered stride 8, 16, 32 (by the spatial size their features have)."""
    import tensorflow as tf

    from tools.models.tfjs import graph_function

    convs = final_convs(graph_def)
    fn = graph_function(graph_def, ["input_1:0"], [c[2] for c in convs])
    outs = fn(tf.zeros([1, 3, nanodet.INPUT, nanodet.INPUT]))
    sizes = [int(np.prod(o.shape[1:3])) for o in outs]
    return [c for _, c in sorted(zip(sizes, convs, strict=True), key=lambda z: -z[0])]
