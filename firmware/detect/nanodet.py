"""NanoDet (GFL head) output decoding, vectorised over all grid cells.

Outputs per stride s: class scores (cells, C) after sigmoid, and box distributions
(cells, 4*(R+1)) over R+1 bins for the distances left, top, right, bottom in units of s.
Cells run row-major over the (H/s, W/s) grid; a cell's centre is ((x + 0.5) s, (y + 0.5) s).
"""

from __future__ import annotations

import numpy as np

# The 80 NanoDet/COCO training classes -> COCO category ids (91-id scheme).
COCO80_TO_91 = np.array(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
     27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
     52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
     78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90],
    np.int16,
)  # fmt: skip


class NanoDetDecoder:
    """Turns NanoDet's raw outputs into boxes (input pixels), scores and COCO ids."""

    def __init__(
        self,
        input_size: tuple[int, int],
        strides: tuple[int, ...] = (8, 16, 32),
        bins: int = 11,
        class_ids: tuple[int, ...] = (1, 27, 31, 33),
    ) -> None:
        self.width, self.height = input_size
        self.strides = tuple(strides)
        self.bins = bins
        wanted = np.asarray(class_ids, np.int16)
        self.columns = np.flatnonzero(np.isin(COCO80_TO_91, wanted))
        self.coco_ids = COCO80_TO_91[self.columns]
        self._centres = {}
        self._mirror: dict[int, np.ndarray] = {}  # cells -> the mirror image's cell for each
        for s in self.strides:
            gw, gh = -(-self.width // s), -(-self.height // s)
            ys, xs = np.mgrid[0:gh, 0:gw]
            c = np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], 1)
            self._centres[gw * gh] = (c.astype(np.float32), s)
            self._mirror[gw * gh] = (ys * gw + (gw - 1 - xs)).ravel()
        self._proj = np.arange(bins, dtype=np.float32)

    def split(self, outs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        """Pairs each stride's (scores, distributions) by shape, whatever the output order."""
        by_cells: dict[int, dict[str, np.ndarray]] = {}
        for o in outs:
            o = o.reshape(o.shape[-2], o.shape[-1])
            kind = "reg" if o.shape[1] == 4 * self.bins else "cls"
            by_cells.setdefault(o.shape[0], {})[kind] = o
        res = []
        for cells, (centres, stride) in self._centres.items():
            pair = by_cells.get(cells)
            if pair is None or len(pair) != 2:
                raise ValueError(f"model outputs do not match NanoDet stride {stride}")
            res.append((pair["cls"], pair["reg"], centres, stride))
        return res

    def __call__(
        self,
        outs: list[np.ndarray],
        score_threshold: float,
        mirrored: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes (N,4) xyxy in input pixels, scores (N,), COCO ids (N,)) above the threshold.

        ``mirrored``: the outputs for the mirror image of the same input (test-time flip).
        Each cell is combined with its mirror cell: class scores averaged, and the box
        distributions averaged as probabilities with left and right swapped. Two views steady
        the scores of small, low-contrast people."""
        levels = self.split(outs)
        mirror_levels = self.split(mirrored) if mirrored is not None else [None] * len(levels)
        boxes, scores, ids = [], [], []
        for (cls, reg, centres, stride), m in zip(levels, mirror_levels, strict=True):
            sc = cls[:, self.columns]
            if m is not None:
                flip = self._mirror[cls.shape[0]]
                sc = (sc + m[0][:, self.columns][flip]) / 2
            cell, k = np.nonzero(sc >= score_threshold)
            if cell.size == 0:
                continue
            p = _softmax(reg[cell].reshape(-1, 4, self.bins))
            if m is not None:
                p = (p + _softmax(m[1][flip[cell]].reshape(-1, 4, self.bins))[:, [2, 1, 0, 3]]) / 2
            dist = (p @ self._proj) * stride  # (n, 4): l, t, r, b
            c = centres[cell]
            boxes.append(np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1))
            scores.append(sc[cell, k])
            ids.append(self.coco_ids[k])
        if not boxes:
            return (
                np.zeros((0, 4), np.float32),
                np.zeros((0,), np.float32),
                np.zeros((0,), np.int16),
            )
        return (
            np.concatenate(boxes).astype(np.float32),
            np.concatenate(scores).astype(np.float32),
            np.concatenate(ids).astype(np.int16),
        )


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
