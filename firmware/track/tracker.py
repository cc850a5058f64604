"""The tracking stage: keeps one id per person (and carried object) across frames.

ByteTrack-style two-stage association on a batched constant-velocity Kalman filter:
high-score detections are matched first (to tracked and recently lost tracks, buffered IoU),
low-score ones then only extend tracks still unmatched, so a partly hidden shopper keeps
their track instead of losing it. New tracks are tentative until confirmed. What is
different from street trackers: a track that was standing still when it was lost is kept
far longer and does not drift (shoppers at a shelf, behind a shelf end), while a moving
one expires quickly; a lost track coming back re-seeds its velocity from the observations
instead of trusting the long blind prediction. All per-track state lives in arrays.
"""

from __future__ import annotations

import logging

import numpy as np

from firmware.track.config import TrackerConfig
from firmware.track.kalman import BatchKalman, cxcywh_to_xyxy, xyxy_to_cxcywh
from firmware.track.matching import assign, iou_matrix
from firmware.types import Detections, Tracks, TrackState

log = logging.getLogger(__name__)

_TENT, _CONF, _LOST = int(TrackState.TENTATIVE), int(TrackState.CONFIRMED), int(TrackState.LOST)


class Tracker:
    """Multi-object tracker. ``update`` once per frame, in timestamp order.

    ``fps`` is the nominal frame rate; it only converts the per-frame noise settings, the
    filter itself predicts over the real time between updates.
    """

    def __init__(self, config: TrackerConfig | None = None, fps: float = 25.0) -> None:
        self.cfg = config if config is not None else TrackerConfig()
        self.kf = BatchKalman(fps, self.cfg.std_position, self.cfg.std_velocity)
        self.fps = float(fps)
        self._classes = np.asarray(sorted(set(self.cfg.classes)), np.int16)
        self._next_id = 1
        self._t: float | None = None
        self.frames = 0
        self.invalid_detections = 0  # dropped for NaN/inf values or empty boxes, total
        self._alloc(0)

    # ----------------------------------------------------------------- state arrays
    def _alloc(self, n: int) -> None:
        self.ids = np.zeros(n, np.int64)
        self.mean = np.zeros((n, 8))
        self.cov = np.zeros((n, 8, 8))
        self.cls = np.zeros(n, np.int16)
        self.score = np.zeros(n, np.float32)
        self.state = np.zeros(n, np.int8)
        self.hits = np.zeros(n, np.int32)
        self.t_last = np.zeros(n)  # time of the last matched detection
        self.z_last = np.zeros((n, 4))  # last matched measurement, cx cy w h
        self.still = np.zeros(n, bool)  # standing still when last seen

    _FIELDS = ("ids", "mean", "cov", "cls", "score", "state", "hits", "t_last", "z_last", "still")

    def _keep(self, mask: np.ndarray) -> None:
        for f in self._FIELDS:
            setattr(self, f, getattr(self, f)[mask])

    def _append(self, z: np.ndarray, cls: np.ndarray, score: np.ndarray, t: float, state: int):
        n = z.shape[0]
        mean, cov = self.kf.initiate(z)
        new = {
            "ids": np.arange(self._next_id, self._next_id + n, dtype=np.int64),
            "mean": mean,
            "cov": cov,
            "cls": cls.astype(np.int16),
            "score": score.astype(np.float32),
            "state": np.full(n, state, np.int8),
            "hits": np.ones(n, np.int32),
            "t_last": np.full(n, t),
            "z_last": z,
            "still": np.zeros(n, bool),
        }
        self._next_id += n
        for f in self._FIELDS:
            setattr(self, f, np.concatenate([getattr(self, f), new[f]]))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    # ----------------------------------------------------------------- main step
    def update(self, dets: Detections, timestamp: float, image: np.ndarray | None = None) -> Tracks:
        """Advance to ``timestamp`` (seconds) and associate ``dets``; returns reported tracks.

        Pass ``Detections.empty()`` on frames where inference was skipped: tracks are only
        predicted. ``image`` is accepted for an appearance cue but not used (no cue has
        measurably helped yet; see docs/tracking.md).
        """
        del image
        cfg = self.cfg
        t = float(timestamp)
        if not np.isfinite(t):
            raise ValueError(f"timestamp must be a finite number of seconds, got {timestamp!r}")
        dt = 0.0 if self._t is None else t - self._t
        if dt < 0:
            log.warning("tracker: timestamp went back by %.3f s; treating as no time passed", -dt)
            dt = 0.0
        first = self._t is None
        self._t = max(t, self._t or t)
        self.frames += 1

        boxes, scores, classes, kps = self._clean(dets)

        # Predict. Lost tracks keep their size; lost still ones stay exactly where they were.
        lost = self.state == _LOST
        if lost.any():
            self.mean[lost, 6:8] = 0.0
            self.mean[lost & self.still, 4:6] = 0.0
        self.mean, self.cov = self.kf.predict(self.mean, self.cov, dt)
        pred = cxcywh_to_xyxy(self.mean[:, :4])

        n_trk = len(self)
        det_for_track = np.full(n_trk, -1, np.intp)
        high = scores >= cfg.high_score
        used = np.zeros(len(scores), bool)

        # Stage 1: high-score detections vs confirmed and lost tracks.
        cand = np.flatnonzero(self.state != _TENT)
        hd = np.flatnonzero(high)
        if cand.size and hd.size:
            sim = iou_matrix(pred[cand], boxes[hd], cfg.box_buffer)
            if cfg.fuse_score:
                sim = sim * scores[hd][None, :]
            sim = np.where(self.cls[cand][:, None] == classes[hd][None, :], sim, -1.0)
            long_lost = (self.state[cand] == _LOST) & (t - self.t_last[cand] > cfg.lost_grace_s)
            if long_lost.any():
                sim[long_lost] = np.where(sim[long_lost] >= cfg.refind_iou, sim[long_lost], -1.0)
            r, c = assign(sim, cfg.match_iou)
            det_for_track[cand[r]] = hd[c]
            used[hd[c]] = True

        # Stage 2: low-score detections vs unmatched tracks that were tracked until just now.
        recent = (self.state == _CONF) | (
            (self.state == _LOST) & (t - self.t_last <= cfg.lost_grace_s)
        )
        cand = np.flatnonzero(recent & (det_for_track < 0))
        ld = np.flatnonzero(~high & ~used)
        if cand.size and ld.size:
            sim = iou_matrix(pred[cand], boxes[ld])
            sim = np.where(self.cls[cand][:, None] == classes[ld][None, :], sim, -1.0)
            r, c = assign(sim, cfg.low_match_iou)
            det_for_track[cand[r]] = ld[c]
            used[ld[c]] = True

        # Stage 3: tentative tracks vs the remaining high-score detections.
        cand = np.flatnonzero(self.state == _TENT)
        hd = np.flatnonzero(high & ~used)
        if cand.size and hd.size:
            sim = iou_matrix(pred[cand], boxes[hd])
            sim = np.where(self.cls[cand][:, None] == classes[hd][None, :], sim, -1.0)
            r, c = assign(sim, cfg.tentative_match_iou)
            det_for_track[cand[r]] = hd[c]
            used[hd[c]] = True

        self._correct(det_for_track, boxes, scores, t)
        matched = det_for_track >= 0
        matched_det = det_for_track.copy()

        # Unmatched: tentative tracks die, confirmed ones become lost, old lost ones expire.
        keep = matched | (self.state != _TENT)
        self.state[~matched & (self.state == _CONF)] = _LOST
        limit = np.where(self.still, cfg.stationary_max_lost_s, cfg.max_lost_s)
        keep &= matched | (t - self.t_last <= limit)
        self._keep(keep)
        matched, matched_det = matched[keep], matched_det[keep]

        # New tracks from confident unmatched detections.
        new = np.flatnonzero(~used & (scores >= cfg.new_track_score))
        if new.size:
            state = _CONF if (first or cfg.confirm_hits <= 1) else _TENT
            self._append(xyxy_to_cxcywh(boxes[new]), classes[new], scores[new], t, state)
            matched = np.concatenate([matched, np.ones(new.size, bool)])
            matched_det = np.concatenate([matched_det, new])

        if len(self) > cfg.max_tracks:
            mask = self._cap_mask()
            self._keep(mask)
            matched, matched_det = matched[mask], matched_det[mask]
        return self._report(t, matched, matched_det, kps)

    # ----------------------------------------------------------------- helpers
    def _clean(self, dets: Detections):
        """Tracked classes only; rows with non-finite values or empty boxes are dropped."""
        boxes = np.asarray(dets.boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(dets.scores, np.float64).reshape(-1)
        classes = np.asarray(dets.classes).reshape(-1)
        if not (boxes.shape[0] == scores.shape[0] == classes.shape[0]):
            raise ValueError(
                f"detections disagree in length: {boxes.shape[0]} boxes, "
                f"{scores.shape[0]} scores, {classes.shape[0]} classes"
            )
        ok = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
        ok &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        self.invalid_detections += int((~ok).sum())
        ok &= np.isin(classes, self._classes) & (scores >= self.cfg.low_score)
        kps = None if dets.keypoints is None else np.asarray(dets.keypoints)[ok]
        return boxes[ok], scores[ok], classes[ok].astype(np.int16), kps

    def _correct(self, det_for_track: np.ndarray, boxes, scores, t: float) -> None:
        """Kalman-update matched tracks; tracks back from being lost are re-seeded."""
        m = np.flatnonzero(det_for_track >= 0)
        if m.size == 0:
            return
        z = xyxy_to_cxcywh(boxes[det_for_track[m]])
        was_lost = self.state[m] == _LOST
        if was_lost.any():
            # The blind prediction is stale: restart the filter at the observation, with the
            # centre velocity implied by the last and the new observation.
            lm = m[was_lost]
            gap = np.maximum(t - self.t_last[lm], 1e-3)
            mean, cov = self.kf.initiate(z[was_lost])
            mean[:, 4:6] = (z[was_lost, :2] - self.z_last[lm, :2]) / gap[:, None]
            self.mean[lm], self.cov[lm] = mean, cov
        um = m[~was_lost]
        if um.size:
            self.mean[um], self.cov[um] = self.kf.update(self.mean[um], self.cov[um], z[~was_lost])
        self.z_last[m] = z
        self.t_last[m] = t
        self.score[m] = scores[det_for_track[m]]
        self.hits[m] += 1
        st = self.state[m]
        st = np.where(st == _LOST, _CONF, st)
        st = np.where((st == _TENT) & (self.hits[m] >= self.cfg.confirm_hits), _CONF, st)
        self.state[m] = st
        speed = np.hypot(self.mean[m, 4], self.mean[m, 5]) / np.maximum(self.mean[m, 3], 1.0)
        self.still[m] = speed < self.cfg.stationary_speed

    def _cap_mask(self) -> np.ndarray:
        """Which tracks to keep so that at most max_tracks remain: the longest-lost go first."""
        order = np.lexsort((self.t_last, self.state != _LOST))  # lost first, oldest first
        mask = np.ones(len(self), bool)
        mask[order[: len(self) - self.cfg.max_tracks]] = False
        return mask

    def _report(self, t: float, matched, matched_det, kps) -> Tracks:
        show = (self.state == _CONF) & matched
        if self.cfg.report_lost_s > 0:
            show |= (self.state == _LOST) & (t - self.t_last <= self.cfg.report_lost_s)
        idx = np.flatnonzero(show)
        keypoints = None
        if kps is not None:
            keypoints = np.full((idx.size, *kps.shape[1:]), np.nan, np.float32)
            md = matched_det[idx]
            ok = md >= 0
            keypoints[ok] = kps[md[ok]]
        return Tracks(
            ids=self.ids[idx].copy(),
            boxes=cxcywh_to_xyxy(self.mean[idx, :4]).astype(np.float32),
            scores=self.score[idx].copy(),
            classes=self.cls[idx].copy(),
            states=self.state[idx].copy(),
            velocities=self.mean[idx, 4:6].astype(np.float32),
            matched=matched[idx].copy(),
            keypoints=keypoints,
        )
