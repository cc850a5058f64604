"""Face locator for on-device anonymisation: BlazeFace (MediaPipe) with its SSD anchors.

``detect(image_bgr)`` -> (boxes (N,4) float32 xyxy pixels, scores (N,) float32). Faces in
store CCTV are often a few pixels wide; pass ``regions`` (for example the upper part of each
person box) to look at those crops scaled up to the model's input instead of the whole frame.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from firmware.detect.manifest import ModelError, model_spec
from firmware.detect.nms import nms
from firmware.detect.runtime import LoadedModel, load_model, outputs, set_input
from firmware.paths import MODELS_DIR

DEFAULT_FACE_MODEL = "blazeface-short"  # best on head regions (see models/blazeface.md)


def ssd_anchors(input_size: int, strides: list[int], per_layer: int) -> np.ndarray:
    """MediaPipe SsdAnchorsCalculator centres (A,2) normalised x, y, fixed anchor size:
    layers with the same stride share a grid; each layer adds ``per_layer`` anchors per cell."""
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n_per_cell = (j - i) * per_layer
        fm = -(-input_size // strides[i])
        ys, xs = np.mgrid[0:fm, 0:fm]
        c = np.stack([(xs.ravel() + 0.5) / fm, (ys.ravel() + 0.5) / fm], 1)
        centres.append(np.repeat(c, n_per_cell, axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


class FaceDetector:
    """BlazeFace on whole frames or on given regions; boxes in the frame's pixels."""

    def __init__(
        self, model: LoadedModel, score_threshold: float | None = None, nms_iou: float = 0.3
    ):
        spec = model.spec
        if spec.task != "face" or spec.decoder != "blazeface":
            raise ModelError(f"model {spec.name!r} is not a face model (task {spec.task!r})")
        self.model = model
        args = spec.params.get("decoder_args", {})
        self.size = spec.input_size[0]
        self.anchors = ssd_anchors(
            self.size, list(args["anchor_strides"]), int(args["anchors_per_layer"])
        )
        self.score_threshold = float(
            args.get("min_score", 0.5) if score_threshold is None else score_threshold
        )
        self.nms_iou = nms_iou
        self.last_timings: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.model.spec.name

    def _run(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces in one crop: letterboxed to the square input, RGB in [-1, 1]."""
        h, w = crop.shape[:2]
        s = self.size / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        ox, oy = (self.size - nw) // 2, (self.size - nh) // 2
        canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(
            crop, (nw, nh), interpolation=cv2.INTER_LINEAR
        )
        x = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) * (2 / 255) - 1
        set_input(self.model, x[None])
        self.model.interpreter.invoke()  # type: ignore[attr-defined]
        outs = outputs(self.model)
        reg = next(o for o in outs if o.shape[-1] == 16).reshape(-1, 16)
        logit = next(o for o in outs if o.shape[-1] == 1).reshape(-1)
        score = 1 / (1 + np.exp(-np.clip(logit, -80, 80)))
        keep = np.flatnonzero(score >= self.score_threshold)
        r, a = reg[keep], self.anchors[keep]
        cx = r[:, 0] / self.size + a[:, 0]
        cy = r[:, 1] / self.size + a[:, 1]
        bw, bh = r[:, 2] / self.size, r[:, 3] / self.size
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * self.size
        boxes = (boxes - [ox, oy, ox, oy]) / s
        return boxes.astype(np.float32), score[keep].astype(np.float32)

    def detect(
        self, image_bgr: np.ndarray, regions: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes (N,4) float32 xyxy pixels of ``image_bgr`` and scores (N,), best first.

        ``regions`` (M,4) xyxy: look only inside these crops (each scaled to the input)."""
        t0 = time.perf_counter()
        h, w = image_bgr.shape[:2]
        if regions is None:
            wins = np.array([[0, 0, w, h]], np.float32)
        else:
            wins = np.asarray(regions, np.float32).reshape(-1, 4)
        all_b, all_s = [], []
        for x0, y0, x1, y1 in np.round(np.clip(wins, 0, [w, h, w, h])).astype(int):
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            b, s = self._run(image_bgr[y0:y1, x0:x1])
            all_b.append(b + np.array([x0, y0, x0, y0], np.float32))
            all_s.append(s)
        if not all_b:
            boxes, scores = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        else:
            boxes, scores = np.concatenate(all_b), np.concatenate(all_s)
            np.clip(boxes, 0, [w, h, w, h], out=boxes)
            keep = nms(boxes, scores, None, self.nms_iou, 200)
            boxes, scores = boxes[keep], scores[keep]
        self.last_timings = {"face": (time.perf_counter() - t0) * 1e3}
        return boxes, scores


def load_face_detector(
    name: str = DEFAULT_FACE_MODEL,
    models_dir: Path | str = MODELS_DIR,
    threads: int = 1,
    score_threshold: float | None = None,
) -> FaceDetector:
    """A verified face locator; ModelError if the model cannot be used."""
    spec = model_spec(name, Path(models_dir))
    return FaceDetector(load_model(spec, Path(models_dir), threads), score_threshold)
