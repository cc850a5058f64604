"""The tracking stage: keeps one id per person (and carried object) across frames.

ByteTrack-style two-stage association on a batched constant-velocity Kalman filter:
high-score detections are matched first (to tracked and lost tracks, IoU weighted by the
detection score), low-score ones then only extend tracks that were tracked until just now,
so a partly hidden shopper keeps their track instead of losing it. New tracks are tentative
until confirmed. What is different from street trackers: a track that was standing still
when it was lost is kept far longer and does not drift (shoppers at a shelf, behind a shelf
end), while a moving one expires quickly; a track lost for more than a moment needs a
clearer overlap to be re-found, so a passer-by does not inherit a waiting shopper's id.
All per-track state lives in arrays; the common frame costs a few dozen numpy calls.
"""

from __future__ import annotations

import logging

import numpy as np

from firmware.track.config import TrackerConfig
from firmware.track.kalman import BatchKalman, KalmanState, cxcywh_to_xyxy, xyxy_to_cxcywh
from firmware.track.matching import assign, iou_matrix
from firmware.types import Detections, Tracks, TrackState

log = logging.getLogger(__name__)

_TENT, _CONF, _LOST = int(TrackState.TENTATIVE), int(TrackState.CONFIRMED), int(TrackState.LOST)
_FIELDS = ("ids", "cls", "score", "state", "hits", "need", "t_last", "z_last", "still_since")


class Tracker:
    """Multi-object tracker. ``update`` once per frame, in timestamp order.

    ``fps`` is the nominal frame rate; it only converts the per-frame noise settings, the
    filter itself predicts over the real time between updates.
    """

    def __init__(self, config: TrackerConfig | None = None, fps: float = 25.0) -> None:
        self.cfg = config if config is not None else TrackerConfig()
        self.kf = BatchKalman(fps, self.cfg.std_position, self.cfg.std_velocity)
        self.fps = float(fps)
        self._classes = np.asarray(sorted(set(self.cfg.classes)), np.int64)
        self._next_id = 1
        self._t: float | None = None
        self.frames = 0
        self.invalid_detections = 0  # dropped for NaN/inf values or empty boxes, in total
        self.kal = KalmanState.empty()
        self.ids = np.zeros(0, np.int64)
        self.cls = np.zeros(0, np.int16)
        self.score = np.zeros(0, np.float32)
        self.state = np.zeros(0, np.int8)
        self.hits = np.zeros(0, np.int32)
        self.need = np.zeros(0, np.int32)  # hits before a tentative track is confirmed
        self.t_last = np.zeros(0)  # time of the last matched detection
        self.z_last = np.zeros((0, 4))  # last matched measurement, cx cy w h
        self.still_since = np.zeros(0)  # standing still since this time; NaN: moving

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    # ----------------------------------------------------------------- main step
    def update(self, dets: Detections, timestamp: float, image: np.ndarray | None = None) -> Tracks:
        """Advance to ``timestamp`` (seconds) and associate ``dets``; returns reported tracks.

        Pass ``Detections.empty()`` on frames where inference was skipped: tracks are only
        predicted. ``image`` is accepted for an appearance cue but not used (none has
        measurably helped yet; see docs/tracking.md).
        """
        del image
        cfg = self.cfg
        t = float(timestamp)
        if not np.isfinite(t):
            raise ValueError(f"timestamp must be a finite number of seconds, got {timestamp!r}")
        first = self._t is None
        dt = 0.0 if first else t - self._t
        if dt < 0:
            log.warning("tracker: timestamp went back by %.3f s; treating as no time passed", -dt)
            dt, t = 0.0, self._t
        self._t = t
        self.frames += 1
        boxes, scores, classes, kps = self._clean(dets)
        n_det = scores.shape[0]

        # Predict. Lost tracks keep their size; lost still ones stay where they were.
        lost = self.state == _LOST
        if lost.any():
            self.kal.v[lost, 2:] = 0.0
            self.kal.v[lost & ~np.isnan(self.still_since)] = 0.0
        self.kf.predict(self.kal, dt)

        n_trk = len(self)
        det_for_track = np.full(n_trk, -1, np.intp)
        used = np.zeros(n_det, bool)
        if n_trk and n_det:
            iou = iou_matrix(cxcywh_to_xyxy(self.kal.x), boxes)
            if self._classes.size > 1:
                iou[self.cls[:, None] != classes[None, :]] = 0.0
            high = scores >= cfg.high_score
            state = self.state
            tent = state == _TENT
            any_tent = tent.any()
            age = t - self.t_last
            if cfg.height_weight:  # a person's height changes slowly: weight every overlap
                h_trk = self.kal.x[:, 3]
                h_det = boxes[:, 3] - boxes[:, 1]
                iou *= np.minimum(h_trk[:, None], h_det) / np.maximum(h_trk[:, None], h_det)
            # Stage 1: high-score detections vs confirmed and lost tracks, ranked by overlap
            # times score^score_power; a strict pass, then a loose one for what is left
            # (fast motion, skipped frames).
            sim = iou * np.where(high, scores**cfg.score_power, 0.0)
            if any_tent:
                sim[tent] = 0.0
            stale = (state == _LOST) & (age > cfg.lost_grace_s)
            any_stale = stale.any()
            if any_stale:
                sim[stale] *= iou[stale] >= cfg.refind_iou
            # Tracks followed until just now pick first; tracks lost for a while (stale)
            # only take the detections left, first strictly, then loosely.
            r, c = assign(sim * ~stale[:, None] if any_stale else sim, cfg.match_iou)
            det_for_track[r] = c
            used[c] = True
            left = sim * ((det_for_track < 0)[:, None] & ~used)
            loose = min(cfg.loose_match_iou, cfg.match_iou)
            if left.max(initial=0.0) >= max(loose, 1e-12):
                passes = [(cfg.match_iou, stale)] if any_stale else []
                if loose < cfg.match_iou:
                    passes += [(loose, ~stale)] + ([(loose, stale)] if any_stale else [])
                for gate, rows in passes:
                    r, c = assign(sim * (((det_for_track < 0) & rows)[:, None] & ~used), gate)
                    det_for_track[r] = c
                    used[c] = True
            # Stage 2: low-score detections vs unmatched tracks tracked until just now.
            low = ~high
            if low.any():
                rows = (det_for_track < 0) & ~tent & ~stale
                r, c = assign(iou * (rows[:, None] & low[None, :]), cfg.low_match_iou)
                det_for_track[r] = c
                used[c] = True
            # Stage 3: tentative tracks vs the remaining high-score detections (and, for a
            # cold start, those down to cold_track_score).
            if any_tent:
                free = (scores >= min(cfg.high_score, cfg.cold_track_score)) & ~used
                r, c = assign(iou * (tent[:, None] & free[None, :]), cfg.tentative_match_iou)
                det_for_track[r] = c
                used[c] = True

        matched = det_for_track >= 0
        if matched.any():
            self._correct(matched, det_for_track, boxes, scores, t)

        # Unmatched: tentative tracks die, confirmed ones become lost, old lost ones expire.
        if not matched.all():
            self.state[~matched & (self.state == _CONF)] = _LOST
            settled = self.t_last - self.still_since >= cfg.stationary_min_s  # NaN: False
            limit = np.where(settled, cfg.stationary_max_lost_s, cfg.max_lost_s)
            keep = matched | ((self.state != _TENT) & (t - self.t_last <= limit))
            if not keep.all():
                self._keep(keep)
                matched, det_for_track = matched[keep], det_for_track[keep]

        # New tracks from confident unmatched detections; less confident ones (cold start)
        # start tentative and need more hits.
        new = np.nonzero(~used & (scores >= min(cfg.new_track_score, cfg.cold_track_score)))[0]
        if new.size:
            cold = scores[new] < cfg.new_track_score
            need = np.where(cold, cfg.cold_confirm_hits, 1 if first else cfg.confirm_hits)
            state = np.where(need <= 1, _CONF, _TENT)
            self._append(xyxy_to_cxcywh(boxes[new]), classes[new], scores[new], t, state, need)
            matched = np.concatenate([matched, np.ones(new.size, bool)])
            det_for_track = np.concatenate([det_for_track, new])

        if len(self) > cfg.max_tracks:
            keep = self._cap_mask()
            self._keep(keep)
            matched, det_for_track = matched[keep], det_for_track[keep]
        return self._report(t, matched, det_for_track, kps)

    # ----------------------------------------------------------------- helpers
    def _clean(self, dets: Detections):
        """Tracked classes only; rows with non-finite values or empty boxes are dropped."""
        boxes = np.asarray(dets.boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(dets.scores, np.float64).reshape(-1)
        classes = np.asarray(dets.classes).reshape(-1)
        n = boxes.shape[0]
        if not (n == scores.shape[0] == classes.shape[0]):
            raise ValueError(
                f"detections disagree in length: {n} boxes, "
                f"{scores.shape[0]} scores, {classes.shape[0]} classes"
            )
        if n == 0:
            return boxes, scores, classes.astype(np.int16), None
        valid = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
        valid &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        ok = valid & (scores >= self.cfg.low_score)
        ok &= (classes[:, None] == self._classes[None, :]).any(axis=1)
        if not valid.all():
            self.invalid_detections += int(n - valid.sum())
        kps = None if dets.keypoints is None else np.asarray(dets.keypoints)
        scores = np.minimum(scores, 1.0)  # confidences; a detector's 1.0000001 is 1
        if not ok.all():
            boxes, scores, classes = boxes[ok], scores[ok], classes[ok]
            kps = None if kps is None else kps[ok]
        return boxes, scores, classes.astype(np.int16), kps

    def _correct(self, matched: np.ndarray, det_for_track: np.ndarray, boxes, scores, t):
        """Kalman-update the matched tracks with their detections; promote states."""
        m = np.nonzero(matched)[0]
        d = det_for_track[m]
        z = xyxy_to_cxcywh(boxes[d])
        z_all = self.kal.x.copy()
        z_all[m] = z
        self.kf.update(self.kal, matched, z_all)
        self.z_last[m] = z
        self.t_last[m] = t
        self.score[m] = scores[d]
        self.hits[m] += 1
        st = self.state[m]
        st[st == _LOST] = _CONF
        st[(st == _TENT) & (self.hits[m] >= self.need[m])] = _CONF
        self.state[m] = st
        v = self.kal.v[m]
        speed = np.sqrt(v[:, 0] ** 2 + v[:, 1] ** 2) / np.maximum(self.kal.x[m, 3], 1.0)
        self.still_since[m] = np.where(
            speed < self.cfg.stationary_speed,
            np.where(np.isnan(self.still_since[m]), t, self.still_since[m]),
            np.nan,
        )

    def _keep(self, mask: np.ndarray) -> None:
        for f in _FIELDS:
            setattr(self, f, getattr(self, f)[mask])
        for f in KalmanState.FIELDS:
            setattr(self.kal, f, getattr(self.kal, f)[mask])

    def _append(self, z, cls, score, t: float, state: np.ndarray, need: np.ndarray) -> None:
        n = z.shape[0]
        new = {
            "ids": np.arange(self._next_id, self._next_id + n, dtype=np.int64),
            "cls": cls.astype(np.int16),
            "score": score.astype(np.float32),
            "state": np.asarray(state, np.int8),
            "hits": np.ones(n, np.int32),
            "need": np.asarray(need, np.int32),
            "t_last": np.full(n, t),
            "z_last": z,
            "still_since": np.full(n, np.nan),
        }
        self._next_id += n
        for f in _FIELDS:
            setattr(self, f, np.concatenate([getattr(self, f), new[f]]))
        init = self.kf.initiate(z)
        for f in KalmanState.FIELDS:
            setattr(self.kal, f, np.concatenate([getattr(self.kal, f), getattr(init, f)]))

    def _cap_mask(self) -> np.ndarray:
        """Which tracks to keep so that at most max_tracks remain: the longest-lost go first."""
        order = np.lexsort((self.t_last, self.state != _LOST))  # lost first, oldest first
        mask = np.ones(len(self), bool)
        mask[order[: len(self) - self.cfg.max_tracks]] = False
        return mask

    def _report(self, t: float, matched, det_for_track, kps) -> Tracks:
        show = (self.state == _CONF) & matched
        if self.cfg.report_lost_s > 0:
            show |= (self.state == _LOST) & (t - self.t_last <= self.cfg.report_lost_s)
        idx = np.flatnonzero(show)
        keypoints = None
        if kps is not None:
            keypoints = np.full((idx.size, *kps.shape[1:]), np.nan, np.float32)
            md = det_for_track[idx]
            ok = md >= 0
            keypoints[ok] = kps[md[ok]]
        return Tracks(
            ids=self.ids[idx],
            boxes=cxcywh_to_xyxy(self.kal.x[idx]).astype(np.float32),
            scores=self.score[idx],
            classes=self.cls[idx],
            states=self.state[idx],
            velocities=self.kal.v[idx, :2].astype(np.float32),
            matched=matched[idx],
            keypoints=keypoints,
        )
