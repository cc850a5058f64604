"""Load a TF.js graph model as a TensorFlow function (conversion venv only).

tfjs-graph-converter only needs two small modules of tensorflowjs, but importing the
package runs its converter ``__init__``, which pulls in tf_keras, TF Hub and decision
forests. Registering bare package modules first lets the two submodules load alone, so the
conversion venv needs ``tensorflowjs`` and ``tfjs-graph-converter`` installed ``--no-deps``.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def _shim_tensorflowjs() -> None:
    if "tensorflowjs.converters" in sys.modules:
        return
    spec = importlib.util.find_spec("tensorflowjs")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("tensorflowjs is not installed in this (conversion) venv")
    root = Path(next(iter(spec.submodule_search_locations)))
    pkg = types.ModuleType("tensorflowjs")
    pkg.__path__ = [str(root)]  # type: ignore[attr-defined]
    conv = types.ModuleType("tensorflowjs.converters")
    conv.__path__ = [str(root / "converters")]  # type: ignore[attr-defined]
    sys.modules["tensorflowjs"] = pkg
    sys.modules["tensorflowjs.converters"] = conv


def load_graph_def(model_json: Path):  # -> tf.compat.v1.GraphDef
    """The model's GraphDef with TF.js fused ops split into plain TF ops (TFLite mode)."""
    _shim_tensorflowjs()
    from tfjs_graph_converter import api
    from tfjs_graph_converter.common import CompatMode

    graph = api.load_graph_model(str(model_json), compat_mode=CompatMode.TFLITE)
    return graph.as_graph_def()


def graph_function(graph_def, inputs: list[str], outputs: list[str]):
    """A callable TF function running ``graph_def`` from ``inputs`` to ``outputs`` tensors."""
    import tensorflow as tf

    def _import():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    g = wrapped.graph
    return wrapped.prune(
        [g.as_graph_element(n) for n in inputs], [g.as_graph_element(n) for n in outputs]
    )
