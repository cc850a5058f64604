"""Box overlap and gated one-to-one assignment between tracks and detections."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray, buffer: float = 0.0) -> np.ndarray:
    """IoU of every box in ``a`` (N,4 xyxy) with every box in ``b`` (M,4 xyxy).

    ``buffer`` > 0 enlarges every box by that fraction of its width/height on each side first
    (buffered IoU), which keeps overlap for fast or jerky motion without changing the ranking
    of well-overlapping pairs much.
    """
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if buffer > 0:
        a = _enlarge(a, buffer)
        b = _enlarge(b, buffer)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _enlarge(boxes: np.ndarray, frac: float) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    pad = np.stack([-w, -h, w, h], axis=1) * frac
    return boxes + pad


def assign(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total-similarity one-to-one matching keeping only pairs >= ``min_similarity``.

    Returns (row indices, column indices) of the kept pairs. Pairs below the gate are made
    unattractive before solving so that they never displace a valid pair.
    """
    if similarity.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    valid = similarity >= min_similarity
    if not valid.any():
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    # Only rows/columns that have at least one valid pair take part: smaller problem.
    rows = np.flatnonzero(valid.any(axis=1))
    cols = np.flatnonzero(valid.any(axis=0))
    sub = similarity[np.ix_(rows, cols)]
    cost = np.where(valid[np.ix_(rows, cols)], -sub, 1e6)
    r, c = linear_sum_assignment(cost)
    keep = cost[r, c] < 1e5
    return rows[r[keep]], cols[c[keep]]
