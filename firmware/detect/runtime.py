"""LiteRT interpreter creation: XNNPACK on the CPU, or the Coral Edge TPU delegate when asked
for and present, with a logged fallback to the CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.detect.manifest import ModelError, ModelSpec, verified_bytes

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"


@dataclass
class LoadedModel:
    """An allocated interpreter plus what it runs: name, sha256, backend ("cpu"/"edgetpu")."""

    spec: ModelSpec
    interpreter: object
    backend: str
    sha256: str
    path: Path

    def input_detail(self) -> dict:
        return self.interpreter.get_input_details()[0]  # type: ignore[attr-defined]

    def output_details(self) -> list[dict]:
        return self.interpreter.get_output_details()  # type: ignore[attr-defined]


def _interpreter(content: bytes, path: Path, threads: int, delegates: list | None = None):
    from ai_edge_litert.interpreter import Interpreter

    try:
        # The default op resolver applies XNNPACK (several times faster than the plain int8
        # kernels on ARM and x86).
        it = Interpreter(
            model_content=content, num_threads=threads, experimental_delegates=delegates
        )
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model file {path} is not a valid TFLite model ({msg})") from None
    return it


def load_model(
    spec: ModelSpec, models_dir: Path, threads: int, edgetpu: bool = False
) -> LoadedModel:
    """Verify and load ``spec``'s file; with ``edgetpu`` try its Edge TPU build first."""
    if edgetpu:
        loaded = _try_edgetpu(spec, Path(models_dir), threads)
        if loaded is not None:
            return loaded
    path = spec.path(models_dir)
    content = verified_bytes(path, spec.sha256)
    it = _interpreter(content, path, threads)
    return LoadedModel(spec, it, "cpu", spec.sha256.lower(), path)


def _try_edgetpu(spec: ModelSpec, models_dir: Path, threads: int) -> LoadedModel | None:
    path = spec.edgetpu_path(models_dir)
    if spec.edgetpu_sha256 is None:
        log.warning("Edge TPU: no Edge TPU build of %s in the manifest; using the CPU", spec.name)
        return None
    try:
        import ctypes

        from ai_edge_litert.interpreter import load_delegate

        ctypes.CDLL(EDGETPU_LIBRARY)  # absent library: fail here (LiteRT's own failure is noisy)
        delegate = load_delegate(EDGETPU_LIBRARY)
    except (ValueError, OSError, RuntimeError) as e:
        log.warning("Edge TPU: delegate %s not available (%s); using the CPU", EDGETPU_LIBRARY, e)
        return None
    content = verified_bytes(path, spec.edgetpu_sha256)
    it = _interpreter(content, path, threads, [delegate])
    log.info("Edge TPU: %s runs on the Edge TPU", path.name)
    return LoadedModel(spec, it, "edgetpu", spec.edgetpu_sha256.lower(), path)


def set_input(model: LoadedModel, image: np.ndarray) -> None:
    """Feed a 1xHxWx3 image of 0..255 values, quantised to the input's dtype as needed."""
    d = model.input_detail()
    it = model.interpreter
    if d["dtype"] == np.float32:
        it.set_tensor(d["index"], image.astype(np.float32, copy=False))  # type: ignore[attr-defined]
        return
    scale, zero = d["quantization"]
    if scale in (0.0, 1.0) and zero == 0 and d["dtype"] == np.uint8:
        it.set_tensor(d["index"], image.astype(np.uint8, copy=False))  # type: ignore[attr-defined]
        return
    info = np.iinfo(d["dtype"])
    q = np.clip(np.round(image.astype(np.float32) / scale + zero), info.min, info.max)
    it.set_tensor(d["index"], q.astype(d["dtype"]))  # type: ignore[attr-defined]


def outputs(model: LoadedModel) -> list[np.ndarray]:
    """Every output tensor, dequantised to float32, in the interpreter's order."""
    res = []
    for d in model.output_details():
        x = model.interpreter.get_tensor(d["index"])  # type: ignore[attr-defined]
        if d["dtype"] != np.float32:
            scale, zero = d["quantization"]
            x = (x.astype(np.float32) - np.float32(zero)) * np.float32(scale)
        res.append(x)
    return res
