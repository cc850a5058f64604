"""Box overlap and gated one-to-one assignment between tracks and detections."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

_EMPTY = np.zeros(0, np.intp)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4 xyxy) with every box in ``b`` (M,4 xyxy)."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def assign(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total-similarity one-to-one matching keeping only pairs >= ``min_similarity``.

    Zero similarity never matches. Returns (row indices, column indices) of the kept pairs.
    When no row or column has two candidates the answer is read off directly (the usual
    case); otherwise the Hungarian solver runs on the rows and columns that have candidates,
    with pairs below the gate made so costly that they never displace a valid pair.
    """
    valid = similarity >= max(min_similarity, 1e-12)
    rows_n = valid.sum(axis=1)
    if rows_n.max(initial=0) == 0:
        return _EMPTY, _EMPTY
    cols_n = valid.sum(axis=0)
    if rows_n.max() == 1 and cols_n.max() == 1:
        return np.nonzero(valid)
    rows = np.nonzero(rows_n)[0]
    cols = np.nonzero(cols_n)[0]
    sub_valid = valid[rows][:, cols]
    cost = np.where(sub_valid, -similarity[rows][:, cols], 1e6)
    r, c = linear_sum_assignment(cost)
    keep = sub_valid[r, c]
    return rows[r[keep]], cols[c[keep]]
