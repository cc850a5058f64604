"""Where the unit finds its own files (models, demo) and where tools find evaluation data."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("VIGIL_MODELS", REPO_ROOT / "models"))


def eval_data_dir() -> Path:
    """The evaluation data set: $VIGIL_EVAL_DATA, default ../shared/data beside the repo."""
    return Path(os.environ.get("VIGIL_EVAL_DATA", REPO_ROOT.parent / "shared" / "data"))
