"""Detect stage: verified LiteRT models (manifest + sha256), NanoDet person/bag detector with
small-person tiling, MoveNet MultiPose keypoints, BlazeFace face locator.

Heavy imports (LiteRT, OpenCV) happen on first use, so the config schema can import
``firmware.detect.config`` cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from firmware.detect.config import DetectorConfig
from firmware.detect.manifest import ModelError, ModelSpec, model_spec, read_manifest

if TYPE_CHECKING:
    from firmware.detect.detector import Detector, load_detector
    from firmware.detect.face import FaceDetector, load_face_detector
    from firmware.detect.pose import PoseEstimator, load_pose

_LAZY = {
    "Detector": "firmware.detect.detector",
    "load_detector": "firmware.detect.detector",
    "FaceDetector": "firmware.detect.face",
    "load_face_detector": "firmware.detect.face",
    "PoseEstimator": "firmware.detect.pose",
    "load_pose": "firmware.detect.pose",
}

__all__ = [
    "Detector",
    "DetectorConfig",
    "FaceDetector",
    "ModelError",
    "ModelSpec",
    "PoseEstimator",
    "load_detector",
    "load_face_detector",
    "load_pose",
    "model_spec",
    "read_manifest",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'firmware.detect' has no attribute {name!r}")
