"""Static-scene prior for a fixed camera: a low-resolution background model and, for each
candidate person box, how much of it differs from the background.

A unit's camera does not move, so what the detector sees where nothing ever changes (shelves,
chairs, a bin) is not a person, however person-like it looks from above. The model keeps a
per-pixel background ``width`` pixels across: an approximate running median (each pixel steps
``step`` grey levels towards the current frame, so passers-by barely move it), or, for a folder
of stills of one camera, their per-pixel median. A pixel is foreground where it differs from
the background by more than ``threshold`` grey levels in any channel, after removing the
frame's overall brightness shift (auto-exposure). ``Detector`` then re-scores person
candidates with ``rescore`` and tightens kept boxes onto the foreground with ``refine_boxes``.

Guards: the prior is not applied before ``warmup_frames`` live frames (``min_stills`` stills),
nor to a frame where more
than ``max_foreground`` of the pixels differ (the camera moved, the light changed), nor to a
folder of stills most of which differ that much from their median (not one fixed camera).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

COVERAGE_GROW = 0.25  # coverage: foreground in the box / in the box grown by this per side
REFINE_GROW = 0.3  # refine: look for the foreground this far around the box, per side
REFINE_QUANTILE = 5.0  # refine: foreground extent between these percentiles (stray pixels)


class BackgroundModel:
    """Per-camera background at low resolution; see the module docstring."""

    def __init__(
        self,
        width: int = 160,
        threshold: float = 20.0,
        step: float = 0.5,
        warmup_frames: int = 25,
        max_foreground: float = 0.4,
        min_stills: int = 8,
        relearn_after: int = 50,
    ) -> None:
        self.width = width
        self.threshold = threshold
        self.step = step
        self.warmup_frames = warmup_frames
        self.max_foreground = max_foreground
        self.min_stills = min_stills
        self.relearn_after = relearn_after
        self.unstable_run = 0  # consecutive live frames that did not match the background
        self.from_stills = False
        self.background: np.ndarray | None = None  # (h, w, 3) float32
        self.frames_seen = 0
        self.scene_stable = True  # False: warmed up from stills that are not one fixed camera

    def _small(self, image_bgr: np.ndarray) -> np.ndarray:
        h, w = image_bgr.shape[:2]
        sw = min(self.width, w)
        sh = max(1, round(h * sw / w))
        return cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)

    def reset(self) -> None:
        """Forget the scene (the camera moved or was replaced)."""
        self.background = None
        self.frames_seen = 0
        self.scene_stable = True
        self.from_stills = False
        self.unstable_run = 0

    def warm_up(self, images: Iterable[np.ndarray], max_images: int = 200) -> None:
        """Background = per-pixel median of one fixed camera's stills (what the running model
        converges to after watching the scene); ready when there were at least
        ``min_stills`` of them. Every ``k``-th image is used so at most ``max_images`` are
        kept. Marks the scene unstable when most stills differ from the median by more than
        ``max_foreground`` (unrelated pictures, a moving camera)."""
        self.reset()
        small = [self._small(im) for im in images]
        if not small or any(s.shape != small[0].shape for s in small):
            return
        k = -(-len(small) // max_images)
        stack = np.stack(small[::k])
        self.background = np.median(stack, axis=0).astype(np.float32)
        self.frames_seen = len(small)
        self.from_stills = True
        moving = np.array([self._mask_small(s).mean() for s in stack])
        self.scene_stable = bool(np.mean(moving <= self.max_foreground) >= 0.5)

    def _mask_small(self, small: np.ndarray) -> np.ndarray:
        assert self.background is not None
        diff = small - self.background
        diff -= np.median(diff.reshape(-1, 3), axis=0)  # overall brightness / exposure shift
        return np.abs(diff).max(axis=2) > self.threshold

    def mask(self, image_bgr: np.ndarray) -> np.ndarray | None:
        """Foreground mask (h, w) bool at low resolution; None before any background or when
        the frame's size does not match it."""
        if self.background is None:
            return None
        small = self._small(image_bgr)
        if small.shape != self.background.shape:
            return None
        return self._mask_small(small)

    def update(
        self, image_bgr: np.ndarray, keep: np.ndarray | None = None, mask: np.ndarray | None = None
    ) -> None:
        """Live update with one frame: each background pixel steps ``step`` grey levels
        towards it (16x faster during warm-up, so the first frame's people wash out); cells
        inside ``keep`` boxes (frame pixels, xyxy: confirmed people) are not updated, so a
        detected person who stands still does not fade into the background. ``mask``: this
        frame's foreground mask; after ``relearn_after`` frames in a row with most pixels
        foreground (the camera was moved or the scene rearranged) the scene is learnt anew."""
        small = self._small(image_bgr)
        if mask is not None and self.ready and float(mask.mean()) > self.max_foreground:
            self.unstable_run += 1
        else:
            self.unstable_run = 0
        relearn = self.unstable_run >= self.relearn_after
        if self.background is None or self.background.shape != small.shape or relearn:
            self.reset()
            self.background = small
            self.frames_seen = 1
            return
        step = self.step if self.ready else 16 * self.step
        delta = np.clip(small - self.background, -step, step)
        if keep is not None and len(keep):
            h, w = image_bgr.shape[:2]
            for x1, y1, x2, y2 in self._cells(np.asarray(keep, np.float32), w, h):
                delta[y1:y2, x1:x2] = 0
        self.background += delta
        self.frames_seen += 1

    @property
    def ready(self) -> bool:
        """Warmed up on a fixed scene: the prior may be applied (frame by frame, ``stable``)."""
        need = self.min_stills if self.from_stills else self.warmup_frames
        return self.background is not None and self.frames_seen >= need and self.scene_stable

    def stable(self, mask: np.ndarray | None) -> bool:
        """The prior applies to the frame whose ``mask`` this is: ready, and at most
        ``max_foreground`` of its pixels differ from the background."""
        return mask is not None and self.ready and float(mask.mean()) <= self.max_foreground

    def _cells(self, boxes: np.ndarray, w: int, h: int) -> np.ndarray:
        """Boxes (frame pixels) -> integer cell ranges on the low-resolution grid, >= 1 cell."""
        assert self.background is not None
        bh, bw = self.background.shape[:2]
        c = boxes * np.array([bw / w, bh / h, bw / w, bh / h], np.float32)
        x1 = np.clip(np.floor(c[:, 0]), 0, bw - 1)
        y1 = np.clip(np.floor(c[:, 1]), 0, bh - 1)
        x2 = np.clip(np.maximum(np.ceil(c[:, 2]), x1 + 1), 1, bw)
        y2 = np.clip(np.maximum(np.ceil(c[:, 3]), y1 + 1), 1, bh)
        return np.stack([x1, y1, x2, y2], 1).astype(np.int64)

    def _counts(
        self, ii: np.ndarray, boxes: np.ndarray, size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        x1, y1, x2, y2 = self._cells(boxes, *size).T
        fg = ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]
        return fg.astype(np.float32), ((x2 - x1) * (y2 - y1)).astype(np.float32)

    def evidence(
        self, mask: np.ndarray, boxes: np.ndarray, frame_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per box (frame pixels, ``frame_size`` = (width, height)): the fraction of its cells
        that are foreground, and its coverage = foreground inside the box / foreground in the
        box grown to 1.5x its width and height (1 where there is none: nothing to cover). A box
        that is well placed on a moving person has both high; one that holds only part of
        the person, or mostly floor next to them, has one of them low."""
        if len(boxes) == 0:
            return np.zeros((0,), np.float32), np.zeros((0,), np.float32)
        w, h = frame_size
        boxes = np.asarray(boxes, np.float32)
        ii = cv2.integral(mask.astype(np.uint8))
        fg, cells = self._counts(ii, boxes, frame_size)
        half = (boxes[:, 2:] - boxes[:, :2]) * COVERAGE_GROW
        grown = np.concatenate([boxes[:, :2] - half, boxes[:, 2:] + half], 1)
        grown = np.clip(grown, 0, [w, h, w, h])
        fg_grown, cells_grown = self._counts(ii, grown, frame_size)
        frac, frac_grown = fg / cells, fg_grown / cells_grown
        # foreground areas as fraction x box area in frame pixels: cells rounded outwards
        # would otherwise credit a small box with its neighbours' foreground
        area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
        inside, around = frac * area(boxes), frac_grown * area(grown)
        cover = np.where(around > 0, inside / np.maximum(around, 1e-6), 1.0)
        return frac.astype(np.float32), np.clip(cover, 0, 1).astype(np.float32)

    def refine_boxes(
        self, mask: np.ndarray, boxes: np.ndarray, frame_size: tuple[int, int], amount: float
    ) -> np.ndarray:
        """Boxes moved ``amount`` (0..1) of the way towards the extent of the foreground
        around them (5th to 95th percentile of the foreground cells within the box grown by
        30% per side); boxes with almost no foreground around them are left as they are."""
        out = np.asarray(boxes, np.float32).copy()
        if amount <= 0 or len(out) == 0:
            return out
        w, h = frame_size
        mh, mw = mask.shape
        sx, sy = mw / w, mh / h
        grow = (out[:, 2:] - out[:, :2]) * REFINE_GROW
        lo = np.floor((out[:, :2] - grow) * [sx, sy]).clip(0).astype(int)
        hi = np.ceil((out[:, 2:] + grow) * [sx, sy]).clip(None, [mw, mh]).astype(int)
        q = [REFINE_QUANTILE, 100 - REFINE_QUANTILE]
        for j in range(len(out)):  # a handful of kept boxes per frame
            ys, xs = np.nonzero(mask[lo[j, 1] : hi[j, 1], lo[j, 0] : hi[j, 0]])
            if xs.size < 4:
                continue
            (fx1, fx2), (fy1, fy2) = np.percentile(xs, q), np.percentile(ys, q)
            fb = np.array(
                [(lo[j, 0] + fx1) / sx, (lo[j, 1] + fy1) / sy,
                 (lo[j, 0] + fx2 + 1) / sx, (lo[j, 1] + fy2 + 1) / sy],
                np.float32,
            )  # fmt: skip
            out[j] = (1 - amount) * out[j] + amount * fb
        return np.clip(out, 0, [w, h, w, h])


def rescore(
    scores: np.ndarray, fg: np.ndarray, cover: np.ndarray, weight: float, full: float
) -> np.ndarray:
    """Detector score combined with foreground evidence:
    ``score^(1-weight) * min(1, fg/full)^weight * cover``. No foreground: 0 (static furniture
    drops out); a moving person whose box is at least ``full`` foreground keeps
    ``score^(1-weight)`` (0.09 -> 0.49 at weight 0.7): a person-shaped thing that moves is
    more likely a person than either cue alone says. ``cover`` demotes boxes that hold only
    part of the moving thing."""
    e = np.minimum(1.0, np.asarray(fg, np.float32) / full)
    s = np.asarray(scores, np.float32) ** (1 - weight) * e**weight * np.asarray(cover, np.float32)
    return s.astype(np.float32)
