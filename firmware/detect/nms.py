"""Vectorised box utilities: IoU and class-aware non-maximum suppression."""

from __future__ import annotations

import numpy as np


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of ``boxes`` (N,4)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None = None,
    iou: float = 0.6,
    max_out: int = 100,
) -> np.ndarray:
    """Indices kept by greedy NMS, best score first; with ``classes``, per class.

    Per-class NMS in one pass by offsetting each class's boxes far apart.
    """
    if boxes.shape[0] == 0:
        return np.zeros((0,), np.int64)
    b = boxes.astype(np.float32)
    if classes is not None:
        span = float(b.max() - b.min()) + 1.0
        b = b + (classes.astype(np.float32) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_out:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[iou_one_to_many(b[i], b[rest]) <= iou]
    return np.asarray(keep, np.int64)
