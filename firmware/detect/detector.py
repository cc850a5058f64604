"""The unit's detector: a verified LiteRT model, optional tiling for small people, a test-time
flip (each window also run mirrored, outputs averaged), a decoder,
a static-scene prior for fixed cameras (``background.py``), NMS, and an optional pose stage
that adds keypoints to people."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from firmware.detect.background import BackgroundModel, rescore
from firmware.detect.config import DetectorConfig
from firmware.detect.manifest import ModelError, model_spec
from firmware.detect.nanodet import NanoDetDecoder
from firmware.detect.nms import nms
from firmware.detect.runtime import LoadedModel, load_model, outputs, set_input
from firmware.paths import MODELS_DIR
from firmware.stages import DetectorTimings
from firmware.types import PERSON, Detections

log = logging.getLogger(__name__)

DECODERS = {"nanodet": NanoDetDecoder}


def tile_windows(
    width: int, height: int, grid: tuple[int, int], overlap: float, full_frame: bool
) -> np.ndarray:
    """Windows (K,4) x0, y0, x1, y1 in pixels: the whole frame (if asked or untiled) then a
    ``grid`` (columns, rows) of tiles overlapping by ``overlap`` of a tile."""
    cols, rows = grid
    wins = []
    if full_frame or (cols, rows) == (1, 1):
        wins.append((0.0, 0.0, float(width), float(height)))
    if (cols, rows) != (1, 1):
        tw = width / (cols - (cols - 1) * overlap)
        th = height / (rows - (rows - 1) * overlap)
        for r in range(rows):
            for c in range(cols):
                x0, y0 = c * tw * (1 - overlap), r * th * (1 - overlap)
                wins.append((x0, y0, min(x0 + tw, width), min(y0 + th, height)))
    return np.round(np.asarray(wins, np.float32))


class Detector:
    """Runs the configured detector on BGR frames of any size (see ``detect``)."""

    def __init__(self, cfg: DetectorConfig, model: LoadedModel, pose=None) -> None:
        self.cfg = cfg
        self.model = model
        spec = model.spec
        if spec.task != "detect" or spec.decoder not in DECODERS:
            raise ModelError(f"model {spec.name!r} is not a detector (task {spec.task!r})")
        self.input_size = spec.input_size
        self.rgb = spec.channel_order == "rgb"
        self.decoder = DECODERS[spec.decoder](
            spec.input_size, class_ids=tuple(cfg.classes), **spec.params.get("decoder_args", {})
        )
        self.pose = pose
        self.last_timings: DetectorTimings = {"preprocess": 0.0, "inference": 0.0, "decode": 0.0}
        self.background: BackgroundModel | None = None
        if cfg.background:
            self.background = BackgroundModel(
                cfg.background_width,
                cfg.background_threshold,
                cfg.background_step,
                cfg.background_warmup_frames,
                cfg.background_max_foreground,
                cfg.background_min_stills,
            )
        self.live_background = True  # update the background with every frame (False: stills)
        self.background_applied = False  # whether the prior re-scored the last frame
        self.last_foreground: np.ndarray | None = None  # its foreground mask (low-res), if so

    def warm_up(self, images) -> None:
        """For stills of one fixed camera (evaluation): background = their median, and no live
        updates until ``reset_background``. A unit learns the same from its live frames."""
        if self.background is not None:
            self.background.warm_up(images)
            self.live_background = False

    def reset_background(self) -> None:
        """Forget the scene and learn it again from live frames (camera moved or replaced)."""
        if self.background is not None:
            self.background.reset()
        self.live_background = True

    @property
    def name(self) -> str:
        return self.model.spec.name

    @property
    def sha256(self) -> str:
        return self.model.sha256

    @property
    def backend(self) -> str:
        return self.model.backend

    def _infer(self, inp: np.ndarray) -> list[np.ndarray]:
        set_input(self.model, np.ascontiguousarray(inp[None]))
        self.model.interpreter.invoke()  # type: ignore[attr-defined]
        return outputs(self.model)

    def candidates(
        self, image_bgr: np.ndarray, score_threshold: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decoded boxes (frame pixels, clipped), scores and COCO ids of every window (whole
        frame and tiles) with score >= ``score_threshold``, before NMS; sets ``last_timings``."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {image_bgr.shape}")
        h, w = image_bgr.shape[:2]
        iw, ih = self.input_size
        t_pre = t_inf = t_dec = 0.0
        all_boxes, all_scores, all_ids = [], [], []
        for x0, y0, x1, y1 in tile_windows(
            w, h, self.cfg.tiles, self.cfg.tile_overlap, self.cfg.full_frame
        ):
            t0 = time.perf_counter()
            crop = image_bgr[int(y0) : int(y1), int(x0) : int(x1)]
            inp = cv2.resize(crop, (iw, ih), interpolation=cv2.INTER_LINEAR)
            if self.rgb:
                inp = cv2.cvtColor(inp, cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            outs = self._infer(inp)
            mirrored = self._infer(inp[:, ::-1]) if self.cfg.flip_test else None
            t2 = time.perf_counter()
            boxes, scores, ids = self.decoder(outs, score_threshold, mirrored)
            sx, sy = (x1 - x0) / iw, (y1 - y0) / ih
            boxes = boxes * np.array([sx, sy, sx, sy], np.float32) + np.array(
                [x0, y0, x0, y0], np.float32
            )
            all_boxes.append(boxes)
            all_scores.append(scores)
            all_ids.append(ids)
            t_pre += t1 - t0
            t_inf += t2 - t1
            t_dec += time.perf_counter() - t2
        boxes = np.concatenate(all_boxes)
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        scores, ids = np.concatenate(all_scores), np.concatenate(all_ids)
        ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        self.last_timings = {
            "preprocess": t_pre * 1e3,
            "inference": t_inf * 1e3,
            "decode": t_dec * 1e3,
        }
        return boxes[ok], scores[ok], ids[ok]

    def detect(self, image_bgr: np.ndarray, score_threshold: float | None = None) -> Detections:
        """People and carried objects in ``image_bgr`` (HxWx3 uint8), in its pixel coordinates,
        scores >= the configured threshold (or ``score_threshold``), best first. With the
        background prior, person scores are re-scored (see ``background.rescore``) when the
        prior applies to this frame, and the frame updates the background (live mode)."""
        thr = self.cfg.score_threshold if score_threshold is None else score_threshold
        bg = self.background
        self.last_foreground = None
        if bg is None:
            boxes, scores, ids = self.candidates(image_bgr, thr)
            t0 = time.perf_counter()
            keep = nms(boxes, scores, ids, self.cfg.nms_iou, self.cfg.max_detections)
            det = Detections(boxes[keep], scores[keep], ids[keep])
            self.last_timings["decode"] += (time.perf_counter() - t0) * 1e3
        else:
            cand = min(thr, self.cfg.background_candidate_score)
            boxes, scores, ids = self.candidates(image_bgr, cand)
            t0 = time.perf_counter()
            det = self._with_prior(image_bgr, boxes, scores, ids, thr)
            self.last_timings["background"] = (time.perf_counter() - t0) * 1e3
        if self.pose is not None:
            t0 = time.perf_counter()
            det.keypoints = self.pose.keypoints_for(image_bgr, det)
            self.last_timings["pose"] = (time.perf_counter() - t0) * 1e3
        return det

    def _with_prior(
        self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, ids: np.ndarray, thr: float
    ) -> Detections:
        """Re-score person candidates by the foreground under them, NMS, refine, update."""
        bg, cfg = self.background, self.cfg
        assert bg is not None
        h, w = image.shape[:2]
        mask = bg.mask(image)
        self.background_applied = applied = bg.stable(mask)
        self.last_foreground = mask if applied else None
        person = ids == PERSON
        if applied:
            assert mask is not None
            fg, cover = bg.evidence(mask, boxes[person], (w, h))
            scores = scores.copy()
            raw = scores[person]
            new = rescore(raw, fg, cover, cfg.background_weight, cfg.background_full)
            kept = raw >= cfg.background_protect_score  # never lowered: privacy fails closed
            scores[person] = np.where(kept, np.maximum(raw, new), new)
        ok = scores >= thr
        boxes, scores, ids, person = boxes[ok], scores[ok], ids[ok], person[ok]
        if applied:
            kp = np.flatnonzero(person)[
                nms(boxes[person], scores[person], None, cfg.background_nms_iou, cfg.max_detections)
            ]
            ko = np.flatnonzero(~person)[
                nms(boxes[~person], scores[~person], ids[~person], cfg.nms_iou, cfg.max_detections)
            ]
            keep = np.concatenate([kp, ko])
            keep = keep[np.argsort(-scores[keep], kind="stable")][: cfg.max_detections]
        else:
            keep = nms(boxes, scores, ids, cfg.nms_iou, cfg.max_detections)
        det = Detections(boxes[keep], scores[keep], ids[keep])
        if applied and cfg.background_refine > 0:
            assert mask is not None
            p = det.classes == PERSON
            det.boxes[p] = bg.refine_boxes(mask, det.boxes[p], (w, h), cfg.background_refine)
        if self.live_background:
            confirmed = (det.classes == PERSON) & (det.scores >= cfg.score_threshold)
            bg.update(image, keep=det.boxes[confirmed] if applied else None, mask=mask)
        return det


def load_detector(
    cfg: DetectorConfig | None = None, models_dir: Path | str = MODELS_DIR
) -> Detector:
    """The configured detector (and pose stage), every model file verified against the manifest.

    Raises ModelError (a ValueError) with a one-line message if a model cannot be used.
    """
    cfg = cfg or DetectorConfig()
    models_dir = Path(models_dir)
    spec = model_spec(cfg.model, models_dir)
    model = load_model(spec, models_dir, cfg.threads, cfg.edgetpu)
    pose = None
    if cfg.pose_model:
        from firmware.detect.pose import load_pose

        pose = load_pose(cfg.pose_model, models_dir, threads=cfg.threads, edgetpu=cfg.edgetpu)
    det = Detector(cfg, model, pose)
    log.info("detector %s (%s) on %s", det.name, det.sha256[:12], det.backend)
    return det
