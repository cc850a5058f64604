"""The unit's detector: a verified LiteRT model, optional tiling for small people, a decoder,
NMS, and an optional pose stage that adds keypoints to people."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from firmware.detect.config import DetectorConfig
from firmware.detect.manifest import ModelError, model_spec
from firmware.detect.nanodet import NanoDetDecoder
from firmware.detect.nms import nms
from firmware.detect.runtime import LoadedModel, load_model, outputs, set_input
from firmware.paths import MODELS_DIR
from firmware.types import Detections

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
        self.last_timings: dict[str, float] = {"preprocess": 0.0, "inference": 0.0, "decode": 0.0}

    @property
    def name(self) -> str:
        return self.model.spec.name

    @property
    def sha256(self) -> str:
        return self.model.sha256

    @property
    def backend(self) -> str:
        return self.model.backend

    def detect(self, image_bgr: np.ndarray, score_threshold: float | None = None) -> Detections:
        """People and carried objects in ``image_bgr`` (HxWx3 uint8), in its pixel coordinates,
        scores >= the configured threshold (or ``score_threshold``), best first."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {image_bgr.shape}")
        thr = self.cfg.score_threshold if score_threshold is None else score_threshold
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
            set_input(self.model, inp[None])
            t1 = time.perf_counter()
            self.model.interpreter.invoke()  # type: ignore[attr-defined]
            t2 = time.perf_counter()
            boxes, scores, ids = self.decoder(outputs(self.model), thr)
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
        t0 = time.perf_counter()
        boxes = np.concatenate(all_boxes)
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        scores, ids = np.concatenate(all_scores), np.concatenate(all_ids)
        ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes, scores, ids = boxes[ok], scores[ok], ids[ok]
        keep = nms(boxes, scores, ids, self.cfg.nms_iou, self.cfg.max_detections)
        det = Detections(boxes[keep], scores[keep], ids[keep])
        t_dec += time.perf_counter() - t0
        self.last_timings = {
            "preprocess": t_pre * 1e3,
            "inference": t_inf * 1e3,
            "decode": t_dec * 1e3,
        }
        if self.pose is not None:
            t0 = time.perf_counter()
            det.keypoints = self.pose.keypoints_for(image_bgr, det)
            self.last_timings["pose"] = (time.perf_counter() - t0) * 1e3
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
