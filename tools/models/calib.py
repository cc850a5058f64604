"""Calibration images for int8 post-training quantisation, and the quantisation itself.

Taken from the training folders of the evaluation data (``train/cctv-*``: elevated store-like
views), never from the sets the models are scored on (COCO128, CAVIAR INRIA).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


def calibration_files(data_dir: Path, count: int = 150) -> list[Path]:
    """``count`` image files spread evenly over the training folders, sorted for determinism."""
    files = sorted((data_dir / "train").glob("*/train/images/*.jpg"))
    if not files:
        raise FileNotFoundError(f"no calibration images under {data_dir / 'train'}")
    step = max(1, len(files) // count)
    return files[::step][:count]


def resized_bgr(files: list[Path], width: int, height: int) -> Iterator[np.ndarray]:
    """Each image as a float32 1xHxWx3 BGR 0..255 batch, stretched to the model's input."""
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cannot read calibration image {f}")
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
        yield img[None].astype(np.float32)


def full_int8(saved_model: Path, calib: list[np.ndarray], output_type: str) -> bytes:
    """A SavedModel (input ``image``) quantised to full int8 with ``calib`` as the
    representative dataset: int8 builtins only, uint8 input, ``output_type`` ('uint8' or
    'int8') outputs. Returns the .tflite bytes."""
    import tensorflow as tf

    def representative():
        for x in calib:
            yield {"image": x}

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = getattr(tf, output_type)
    return conv.convert()
