"""Fail-closed anonymisation of the frames the unit stores or shows.

Masks come from this frame's person detections, from tracks, and from memory. Detections at
the operating score (``confident_score``) are always masked, still or moving; weaker
candidates (down to ``min_score``) only where they agree with something else: the
static-scene model's foreground under them, or a track's box; a weak candidate on a
remembered person renews that memory, so someone who sits down and fades into the
background stays masked while the detector still sees them at all. Without a foreground mask
(no scene model yet, or the scene is unstable) every weak candidate counts, as the
fail-safe. A track's
mask stays (and grows) for ``persist_frames`` after its last detection, so one missed
detection never unmasks anyone. When inference fails, stalls or falls behind, the whole
frame is masked until it has worked for ``recovery_frames`` frames in a row. Static privacy
masks are blanked first. Every fill is irreversible (solid, noise, or coarse pixels plus
noise); the input image is never modified.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from firmware.privacy.config import PrivacyConfig
from firmware.types import PERSON, Detections, Tracks

log = logging.getLogger(__name__)

HEAD_KEYPOINTS = slice(0, 5)  # COCO: nose, eyes, ears
SHOULDERS = (5, 6)
KEYPOINT_MIN_SCORE = 0.3
REFRESH_IOU = 0.5  # a weak candidate this close to a remembered person renews the memory


@dataclass(slots=True)
class _Remembered:
    box: np.ndarray  # (4,) float32 xyxy in image pixels, person box
    keypoints: np.ndarray | None  # (17,3) or None
    age: int  # frames since the last detection supported it


class Anonymiser:
    """Masks people and static privacy areas; keeps per-track memory between frames."""

    def __init__(self, cfg: PrivacyConfig, seed: int | None = None):
        self.cfg = cfg
        self._memory: dict[int, _Remembered] = {}
        self._recent: deque[np.ndarray] = deque(maxlen=max(cfg.detection_persist_frames, 1))
        self._frames_without_inference = 0
        self._good_frames = cfg.recovery_frames  # starts healthy
        self._static: dict[tuple[int, int], np.ndarray] = {}
        self._background: np.ndarray | None = None
        self._rng = np.random.default_rng(seed)
        self.last_regions = np.zeros((0, 4), np.int32)
        self.last_full = False
        self.frames = 0
        self.full_frames = 0

    # ---- public API -------------------------------------------------------------------
    def mask_static(self, image: np.ndarray) -> np.ndarray:
        """A copy with only the static privacy masks blanked (for inference, if configured)."""
        out = image.copy()
        self._apply_static(out)
        return out

    def apply(
        self,
        image: np.ndarray,
        detections: Detections | None,
        tracks: Tracks | None,
        inference_ok: bool = True,
        scale_from: tuple[int, int] | None = None,
        faces: np.ndarray | None = None,
        foreground: np.ndarray | None = None,
    ) -> np.ndarray:
        """A new, masked copy of ``image`` (HxWx3 BGR) for storing or showing.

        ``detections``/``tracks`` are this frame's (None when inference did not run);
        ``scale_from`` is the (width, height) their boxes refer to when that is not the
        image's size (inference on the low-resolution stream); ``faces`` (N,4) xyxy boxes
        from a face locator, in the same coordinates, are masked too (in every mode);
        ``foreground`` is the static-scene model's boolean mask at any resolution covering
        the whole frame (None: unknown, every weak candidate is masked).
        """
        h, w = image.shape[:2]
        sx, sy = (1.0, 1.0) if scale_from is None else (w / scale_from[0], h / scale_from[1])
        out = image.copy()
        self.frames += 1
        if self.cfg.mode == "silhouette":
            self._update_background(image)

        healthy = self._health(detections, inference_ok)
        self._update_memory(detections, tracks, sx, sy)
        self._apply_static(out)
        if not healthy:
            self.full_frames += 1
            self.last_full = True
            self.last_regions = np.array([[0, 0, w, h]], np.int32)
            self._fill(out, 0, 0, w, h)
            return out
        self.last_full = False
        regions = self._regions(detections, tracks, sx, sy, w, h, foreground)
        if faces is not None and len(faces):
            f = _scale(np.asarray(faces, np.float32).reshape(-1, 4), sx, sy)
            fr = self._enlarge(f, f, np.full(len(f), 10.0, np.float32), w, h)  # generous
            regions = _drop_contained(np.concatenate([regions, fr]))
        self.last_regions = regions
        if self.cfg.mode == "silhouette":
            self._draw_silhouettes(out, image, regions)
        else:
            for x1, y1, x2, y2 in regions.tolist():
                self._fill(out, x1, y1, x2, y2)
        return out

    def coverage_mask(self, size: tuple[int, int]) -> np.ndarray:
        """Boolean (H, W) map of the pixels the last ``apply`` masked (static areas included)."""
        w, h = size
        m = np.zeros((h, w), bool)
        for x1, y1, x2, y2 in self.last_regions.tolist():
            m[y1:y2, x1:x2] = True
        if self.cfg.static_masks:
            m |= self._static_mask(w, h)
        return m

    def reset(self) -> None:
        """Forget all track memory (a new clip or a camera reopen)."""
        self._memory.clear()
        self._recent.clear()
        self._background = None

    # ---- state ------------------------------------------------------------------------
    def _health(self, detections: Detections | None, inference_ok: bool) -> bool:
        if detections is None:
            self._frames_without_inference += 1
        else:
            self._frames_without_inference = 0
        ok = (
            inference_ok and self._frames_without_inference <= self.cfg.max_frames_without_inference
        )
        if not ok:
            if self._good_frames >= self.cfg.recovery_frames:
                log.warning("inference failed or stalled: masking whole frames")
            self._good_frames = 0
            return False
        if self._good_frames < self.cfg.recovery_frames:
            self._good_frames += 1
            if self._good_frames < self.cfg.recovery_frames:
                return False
            log.info("inference recovered: masking people again")
        return True

    def _update_memory(
        self, detections: Detections | None, tracks: Tracks | None, sx: float, sy: float
    ) -> None:
        for mem in self._memory.values():
            mem.age += 1
        if tracks is not None and len(tracks):
            people = tracks.classes == PERSON
            matched = (
                tracks.matched if len(tracks.matched) == len(tracks) else np.ones(len(tracks), bool)
            )
            boxes = _scale(tracks.boxes, sx, sy)
            kps = None if tracks.keypoints is None else _scale_kp(tracks.keypoints, sx, sy)
            for i in np.flatnonzero(people & matched):
                kp = None if kps is None else kps[i]
                self._memory[int(tracks.ids[i])] = _Remembered(boxes[i].copy(), kp, 0)
        limit = self.cfg.persist_frames
        for tid in [t for t, m in self._memory.items() if m.age > limit]:
            del self._memory[tid]

    # ---- geometry ---------------------------------------------------------------------
    def _regions(
        self,
        detections: Detections | None,
        tracks: Tracks | None,
        sx: float,
        sy: float,
        w: int,
        h: int,
        foreground: np.ndarray | None = None,
    ) -> np.ndarray:
        """All mask rectangles for this frame as int32 (N,4) xyxy, clipped to the image."""
        boxes: list[np.ndarray] = []
        kps: list[np.ndarray | None] = []
        ages: list[np.ndarray] = []

        def add(b: np.ndarray, k: np.ndarray | None, age: np.ndarray) -> None:
            if len(b):
                boxes.append(b.astype(np.float32, copy=False))
                kps.append(k if k is not None else np.full((len(b), 17, 3), np.nan, np.float32))
                ages.append(age.astype(np.float32))

        db = np.zeros((0, 4), np.float32)
        if detections is not None and len(detections):
            d = detections.select(self._kept(detections, tracks, sx, sy, w, h, foreground))
            dk = None if d.keypoints is None else _scale_kp(d.keypoints, sx, sy)
            db = _scale(d.boxes, sx, sy)
            add(db, dk, np.zeros(len(d)))
        for age, old in enumerate(reversed(self._recent), start=1):
            if age <= self.cfg.detection_persist_frames:
                add(old, None, np.full(len(old), age))
        tb = np.zeros((0, 4), np.float32)
        if tracks is not None and len(tracks):
            tb = _scale(tracks.boxes[tracks.classes == PERSON], sx, sy)
        untracked = _inside_share(db, tb).max(axis=1) < 0.9 if len(tb) and len(db) else None
        self._recent.append(db[untracked].copy() if untracked is not None else db.copy())
        current: set[int] = set()
        if tracks is not None and len(tracks):
            t = tracks.select(tracks.classes == PERSON)
            current = {int(i) for i in t.ids}
            tk = None if t.keypoints is None else _scale_kp(t.keypoints, sx, sy)
            tage = np.array(
                [self._memory[int(i)].age if int(i) in self._memory else 0 for i in t.ids],
                np.float32,
            )
            add(_scale(t.boxes, sx, sy), tk, tage)
        # a remembered track seen this frame is already there as the track's own box
        mems = [m for i, m in self._memory.items() if m.age > 0 or i not in current]
        if mems:
            mk = np.stack(
                [m.keypoints if m.keypoints is not None else np.full((17, 3), np.nan) for m in mems]
            ).astype(np.float32)
            add(np.stack([m.box for m in mems]), mk, np.array([m.age for m in mems]))
        if not boxes:
            return np.zeros((0, 4), np.int32)
        b = np.concatenate(boxes)
        k = np.concatenate(kps)
        a = np.concatenate(ages)
        return self._enlarge(self._target(b, k), b, a, w, h)

    def _kept(
        self,
        det: Detections,
        tracks: Tracks | None,
        sx: float,
        sy: float,
        w: int,
        h: int,
        foreground: np.ndarray | None,
    ) -> np.ndarray:
        """Which detections to mask: people at the operating score; weaker ones (down to
        ``min_score``, not frame-sized) where foreground or a track agrees, or all of them
        when there is no foreground to ask."""
        cfg = self.cfg
        b = _scale(det.boxes, sx, sy)
        person = (det.classes == PERSON) & (det.scores >= cfg.min_score)
        confident = det.scores >= cfg.confident_score
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / float(w * h)
        weak = person & ~confident & (area <= cfg.low_score_max_area)
        if foreground is None or not weak.any():
            return person & (confident | weak)
        agree = foreground_share(foreground, b, w, h) >= cfg.weak_foreground
        mems = list(self._memory.values())
        known = [m.box for m in mems]
        if tracks is not None and len(tracks):
            known += list(_scale(tracks.boxes[tracks.classes == PERSON], sx, sy))
        if known:
            kb = np.stack(known)
            agree |= _inside_share(b, kb).max(axis=1) >= cfg.weak_track_overlap
            if mems:  # a remembered person still seen, however weakly, stays remembered
                iou = _iou(b[weak], kb[: len(mems)])
                for j in np.flatnonzero(iou.max(axis=0) >= REFRESH_IOU):
                    mems[j].age = 0
        return person & (confident | (weak & agree))

    def _target(self, boxes: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """The area to mask for each person box, by mode (whole box, or the head)."""
        if self.cfg.mode != "head":
            return boxes
        out = boxes.copy()
        bw = boxes[:, 2] - boxes[:, 0]
        bh = boxes[:, 3] - boxes[:, 1]
        upright = bh >= self.cfg.upright_aspect * bw
        top = boxes[:, 1] + self.cfg.head_fraction * bh
        out[upright, 3] = top[upright]  # others (overhead, lying, crouching) stay whole
        head = kps[:, HEAD_KEYPOINTS, :]
        vis = np.nan_to_num(head[..., 2], nan=0.0) >= KEYPOINT_MIN_SCORE
        has = vis.any(axis=1)
        if has.any():
            xs = np.where(vis, head[..., 0], np.nan)[has]
            ys = np.where(vis, head[..., 1], np.nan)[has]
            cx, cy = np.nanmean(xs, axis=1), np.nanmean(ys, axis=1)
            spread = np.maximum(
                np.nanmax(xs, 1) - np.nanmin(xs, 1), np.nanmax(ys, 1) - np.nanmin(ys, 1)
            )
            sh = kps[has][:, SHOULDERS, :]
            shoulder = np.hypot(sh[:, 0, 0] - sh[:, 1, 0], sh[:, 0, 1] - sh[:, 1, 1])
            shoulder = np.where(
                np.nan_to_num(sh[..., 2].min(axis=1)) >= KEYPOINT_MIN_SCORE, shoulder, 0
            )
            half = 0.5 * np.maximum.reduce(
                [2.0 * spread, 1.2 * shoulder, 0.3 * np.minimum(bw[has], bh[has])]
            )
            kb = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)
            # keypoints and box estimate together: a wrong keypoint must not shrink the mask
            out[has] = _union(kb, out[has])
        return out

    def _enlarge(
        self, target: np.ndarray, person: np.ndarray, ages: np.ndarray, w: int, h: int
    ) -> np.ndarray:
        """Grow each target by the margin (relative to its person box) plus growth with age."""
        pw = person[:, 2] - person[:, 0]
        ph = person[:, 3] - person[:, 1]
        frac = self.cfg.margin + self.cfg.persist_growth * ages
        dx = np.maximum(self.cfg.margin_px, frac * pw)
        dy = np.maximum(self.cfg.margin_px, frac * ph)
        r = np.stack(
            [target[:, 0] - dx, target[:, 1] - dy, target[:, 2] + dx, target[:, 3] + dy], 1
        )
        r = np.nan_to_num(r, nan=0.0)
        r[:, [0, 2]] = np.clip(np.floor(r[:, [0, 2]]), 0, w)
        r[:, [1, 3]] = np.clip(np.floor(r[:, [1, 3]]), 0, h)
        r[:, 2:] = np.ceil(r[:, 2:])
        r = r.astype(np.int32)
        r = r[(r[:, 2] > r[:, 0]) & (r[:, 3] > r[:, 1])]
        return _drop_contained(np.unique(r, axis=0) if len(r) > 1 else r)

    # ---- drawing ----------------------------------------------------------------------
    def _fill(self, out: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> None:
        region = out[y1:y2, x1:x2]
        if region.size == 0:
            return
        if self.cfg.fill == "solid":
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), self.cfg.color, -1)
        elif self.cfg.fill == "noise":
            region[:] = self._rng.integers(0, 256, region.shape, dtype=np.uint8)
        else:
            rh, rw = region.shape[:2]
            cell = max(8, min(rw, rh) // 3)  # at most ~3 cells across: nothing recognisable
            small = cv2.resize(
                region,
                (max(1, -(-rw // cell)), max(1, -(-rh // cell))),
                interpolation=cv2.INTER_AREA,
            ).astype(np.int16)
            small += self._rng.integers(-32, 33, small.shape, dtype=np.int16)
            region[:] = cv2.resize(
                np.clip(small, 0, 255).astype(np.uint8), (rw, rh), interpolation=cv2.INTER_NEAREST
            )

    def _update_background(self, image: np.ndarray) -> None:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if self._background is None or self._background.shape != gray.shape:
            self._background = gray
        else:
            cv2.accumulateWeighted(gray, self._background, 0.02)

    def _draw_silhouettes(self, out: np.ndarray, image: np.ndarray, regions: np.ndarray) -> None:
        """Each region flat-filled; foreground pixels (differing from the background) darker."""
        light = np.array(self.cfg.color, np.uint8)
        dark = (light.astype(np.float32) * 0.35).astype(np.uint8)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        assert self._background is not None
        for x1, y1, x2, y2 in regions.tolist():
            fg = np.abs(gray[y1:y2, x1:x2] - self._background[y1:y2, x1:x2]) > 25
            fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
            out[y1:y2, x1:x2] = np.where(fg[..., None] > 0, dark, light)

    def _static_mask(self, w: int, h: int) -> np.ndarray:
        m = self._static.get((w, h))
        if m is None:
            m8 = np.zeros((h, w), np.uint8)
            for sm in self.cfg.static_masks:
                pts = np.round(np.array(sm.polygon, np.float64) * [w - 1, h - 1]).astype(np.int32)
                cv2.fillPoly(m8, [pts], 1)
            m = m8.astype(bool)
            self._static[(w, h)] = m
        return m

    def _apply_static(self, out: np.ndarray) -> None:
        if self.cfg.static_masks:
            h, w = out.shape[:2]
            out[self._static_mask(w, h)] = self.cfg.color


def foreground_share(fg: np.ndarray, boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Fraction of each box (image pixels, xyxy) that is foreground in ``fg`` (a boolean mask
    of the whole frame at its own resolution), from one integral image."""
    mh, mw = fg.shape[:2]
    ii = cv2.integral(fg.astype(np.uint8)).astype(np.int64)
    c = boxes * np.array([mw / w, mh / h, mw / w, mh / h], np.float32)
    x1 = np.clip(np.floor(c[:, 0]), 0, mw - 1).astype(np.int64)
    y1 = np.clip(np.floor(c[:, 1]), 0, mh - 1).astype(np.int64)
    x2 = np.clip(np.maximum(np.ceil(c[:, 2]), x1 + 1), 1, mw).astype(np.int64)
    y2 = np.clip(np.maximum(np.ceil(c[:, 3]), y1 + 1), 1, mh).astype(np.int64)
    n = ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]
    return n / ((x2 - x1) * (y2 - y1)).astype(np.float64)


def _inside_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[i, j]: fraction of box a[i]'s area that lies inside box b[j]."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=2)
    area = np.clip(a[:, 2:] - a[:, :2], 1e-6, None).prod(axis=1)
    return inter / area[:, None]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[i, j]: intersection over union of boxes a[i] and b[j]."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=2)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-6)


def _drop_contained(r: np.ndarray) -> np.ndarray:
    """Rectangles not inside another one (of identical ones, the first is kept)."""
    if len(r) < 2:
        return r
    a, b = r[:, None, :], r[None, :, :]
    inside = (b[..., 0] <= a[..., 0]) & (b[..., 1] <= a[..., 1])
    inside &= (b[..., 2] >= a[..., 2]) & (b[..., 3] >= a[..., 3])  # [i, j]: j contains i
    same = (a == b).all(axis=2)
    idx = np.arange(len(r))
    drop = (inside & (~same | (idx[None, :] < idx[:, None]))).any(axis=1)
    return r[~drop]


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])], axis=1)


def _scale(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    if sx == 1.0 and sy == 1.0:
        return boxes.astype(np.float32, copy=False)
    return (boxes * np.array([sx, sy, sx, sy], np.float32)).astype(np.float32)


def _scale_kp(kp: np.ndarray, sx: float, sy: float) -> np.ndarray:
    if sx == 1.0 and sy == 1.0:
        return kp.astype(np.float32, copy=False)
    return (kp * np.array([sx, sy, 1.0], np.float32)).astype(np.float32)
