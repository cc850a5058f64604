"""The model manifest (models/manifest.toml) and the checks every model file passes at load.

A model is loaded only if its file exists, its sha256 matches the manifest, and LiteRT
accepts it; anything else is refused with a one-line ``ModelError`` naming the file.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.toml"


class ModelError(ValueError):
    """A model cannot be used: missing, not what the manifest says, or not valid TFLite."""


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry: what a model file is and how to feed and decode it."""

    name: str
    file: str
    sha256: str
    task: str  # "detect", "pose", "face"
    decoder: str  # "nanodet", "movenet-multipose", "blazeface"
    input_size: tuple[int, int]  # width, height
    channel_order: str = "bgr"  # what the model's input expects
    labels: str = "coco80"
    committed: bool = True
    edgetpu_sha256: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def path(self, models_dir: Path) -> Path:
        return Path(models_dir) / self.file

    def edgetpu_path(self, models_dir: Path) -> Path:
        p = self.path(models_dir)
        return p.with_name(p.stem + "_edgetpu" + p.suffix)


_KNOWN = {f for f in ModelSpec.__dataclass_fields__ if f not in ("name", "params")}


def read_manifest(models_dir: Path) -> dict[str, ModelSpec]:
    """Every model in ``models_dir/manifest.toml`` by name."""
    path = Path(models_dir) / MANIFEST
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: model manifest missing") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: cannot read model manifest ({e})") from None
    specs = {}
    for name, entry in raw.get("models", {}).items():
        try:
            known = {k: v for k, v in entry.items() if k in _KNOWN}
            known["input_size"] = tuple(known["input_size"])
            params = {k: v for k, v in entry.items() if k not in _KNOWN}
            specs[name] = ModelSpec(name=name, params=params, **known)
        except (KeyError, TypeError) as e:
            raise ModelError(f"{path}: entry [models.{name}] is incomplete ({e})") from None
    return specs


def model_spec(name: str, models_dir: Path) -> ModelSpec:
    """The manifest entry for ``name``; a clear error listing the known names otherwise."""
    specs = read_manifest(models_dir)
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise ModelError(f"model {name!r} is not in {Path(models_dir) / MANIFEST} (known: {known})")
    return specs[name]


def verified_bytes(path: Path, expected_sha256: str) -> bytes:
    """The file's content after checking it exists, matches its sha256 and looks like TFLite."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file {path} is missing") from None
    except OSError as e:
        raise ModelError(f"model file {path} cannot be read ({e.strerror})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        raise ModelError(
            f"model file {path} does not match the manifest: sha256 expected "
            f"{expected_sha256.lower()}, actual {actual}"
        )
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"model file {path} is not a valid TFLite model (no TFL3 identifier)")
    return data
