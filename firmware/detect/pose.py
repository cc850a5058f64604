"""Pose stage: MoveNet MultiPose Lightning as an int8 body plus a small float decode model.

``estimate(image_bgr, person_boxes)`` -> keypoints (N,17,3): x, y in the frame's pixels and a
score, COCO keypoint order, NaN rows where no pose was found. Each person is looked at in a
square crop around its box scaled to the model's 256x256 input, so people far from the
camera still get keypoints. ``poses(image_bgr)`` runs on the whole frame (up to 6 people).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from firmware.detect.manifest import ModelError, model_spec
from firmware.detect.runtime import LoadedModel, load_model, set_input
from firmware.paths import MODELS_DIR
from firmware.types import PERSON, Detections

KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
DEFAULT_POSE_MODEL = "movenet-multipose-int8"


def _named_outputs(model: LoadedModel) -> dict[str, np.ndarray]:
    """The signature's outputs by name, dequantised to float32."""
    it = model.interpreter
    res = {}
    for name, d in it.get_signature_runner().get_output_details().items():  # type: ignore[attr-defined]
        x = it.get_tensor(d["index"])  # type: ignore[attr-defined]
        if d["dtype"] != np.float32:
            scale, zero = d["quantization"]
            x = (x.astype(np.float32) - np.float32(zero)) * np.float32(scale)
        res[name] = x
    return res


class PoseEstimator:
    """MoveNet MultiPose: int8 body (image -> six head maps) + float decode (maps -> poses)."""

    def __init__(self, body: LoadedModel, decode: LoadedModel, min_pose_score: float = 0.15):
        if body.spec.task != "pose":
            raise ModelError(
                f"model {body.spec.name!r} is not a pose model (task {body.spec.task!r})"
            )
        self.body, self.decode = body, decode
        self.size = body.spec.input_size[0]
        self.min_pose_score = min_pose_score
        self._decode_runner = decode.interpreter.get_signature_runner()  # type: ignore[attr-defined]
        self.last_timings: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.body.spec.name

    def _run(self, square_bgr: np.ndarray) -> np.ndarray:
        """Poses (6, 56) for one square image: 17 x (y, x, score) normalised, box, score."""
        inp = cv2.resize(square_bgr, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        set_input(self.body, cv2.cvtColor(inp, cv2.COLOR_BGR2RGB)[None])
        self.body.interpreter.invoke()  # type: ignore[attr-defined]
        heads = _named_outputs(self.body)
        return self._decode_runner(**heads)["poses"].reshape(-1, 56)

    @staticmethod
    def _square(
        image: np.ndarray, cx: float, cy: float, side: float
    ) -> tuple[np.ndarray, float, float]:
        """A side x side crop centred on (cx, cy), zero-padded past the frame; its origin."""
        side = max(int(round(side)), 8)
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        h, w = image.shape[:2]
        out = np.zeros((side, side, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
        return out, float(x0), float(y0)

    def estimate(
        self, image_bgr: np.ndarray, person_boxes: np.ndarray, margin: float = 0.25
    ) -> np.ndarray:
        """Keypoints (N,17,3) for each xyxy person box; NaN rows where no pose was found."""
        t0 = time.perf_counter()
        boxes = np.asarray(person_boxes, np.float32).reshape(-1, 4)
        out = np.full((len(boxes), 17, 3), np.nan, np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
            crop, ox, oy = self._square(image_bgr, (x1 + x2) / 2, (y1 + y2) / 2, side)
            poses = self._run(crop)
            poses = poses[poses[:, 55] >= self.min_pose_score]
            if len(poses) == 0:
                continue
            s = crop.shape[0]
            # the pose whose box centre is nearest the crop centre is this person
            pc = np.stack([(poses[:, 52] + poses[:, 54]) / 2, (poses[:, 51] + poses[:, 53]) / 2], 1)
            best = poses[int(np.argmin(((pc - 0.5) ** 2).sum(1)))]
            kp = best[:51].reshape(17, 3)
            out[i, :, 0] = kp[:, 1] * s + ox
            out[i, :, 1] = kp[:, 0] * s + oy
            out[i, :, 2] = kp[:, 2]
        self.last_timings = {"pose": (time.perf_counter() - t0) * 1e3}
        return out

    def keypoints_for(self, image_bgr: np.ndarray, det: Detections) -> np.ndarray:
        """Keypoints for every detection: people get them, other classes NaN rows."""
        kp = np.full((len(det), 17, 3), np.nan, np.float32)
        people = np.flatnonzero(det.classes == PERSON)
        if people.size:
            kp[people] = self.estimate(image_bgr, det.boxes[people])
        return kp

    def poses(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whole-frame MultiPose: (boxes (N,4) xyxy px, scores (N,), keypoints (N,17,3))."""
        h, w = image_bgr.shape[:2]
        crop, ox, oy = self._square(image_bgr, w / 2, h / 2, max(w, h))
        p = self._run(crop)
        p = p[p[:, 55] >= self.min_pose_score]
        s = crop.shape[0]
        kp = p[:, :51].reshape(-1, 17, 3)[:, :, [1, 0, 2]].copy()
        kp[:, :, 0] = kp[:, :, 0] * s + ox
        kp[:, :, 1] = kp[:, :, 1] * s + oy
        boxes = p[:, [52, 51, 54, 53]] * s + np.array([ox, oy, ox, oy], np.float32)
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        return boxes.astype(np.float32), p[:, 55].astype(np.float32), kp.astype(np.float32)


def load_pose(
    name: str = DEFAULT_POSE_MODEL,
    models_dir: Path | str = MODELS_DIR,
    threads: int = 1,
    edgetpu: bool = False,
    min_pose_score: float = 0.15,
) -> PoseEstimator:
    """A verified pose estimator (body and its decode model); ModelError if unusable."""
    models_dir = Path(models_dir)
    spec = model_spec(name, models_dir)
    if spec.task != "pose":
        raise ModelError(f"model {name!r} is not a pose model (task {spec.task!r})")
    decode_name = spec.params.get("decode_model")
    if not decode_name:
        raise ModelError(f"model {name!r} has no decode_model in the manifest")
    body = load_model(spec, models_dir, threads, edgetpu)
    decode = load_model(model_spec(decode_name, models_dir), models_dir, threads)
    return PoseEstimator(body, decode, min_pose_score)
