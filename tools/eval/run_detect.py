"""`vigil-eval detect`: COCO results JSON from the unit's detector on a folder of images.

Every detection with score >= 0.05 (COCO evaluation needs the low-score tail), using the
unit's default detector configuration (or a site config's ``[detector]`` with ``--config``).
``image_id`` is the file name stem; for images in subfolders it is the relative path
without suffix (``Walk1/0236``), so names stay unique.

With the detector's background prior on (the default), the images are stills of fixed
cameras: each sub-folder and image size is one camera, whose background is warmed up from
all of that camera's images before they are scored (a unit has watched its scene for hours).
A camera with fewer than ``background_min_stills`` images, or whose images are not one
fixed scene (unrelated pictures), is scored without the prior.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
EVAL_SCORE = 0.05


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--images", required=True, type=Path, help="folder of images (searched recursively)"
    )
    p.add_argument("--out", required=True, type=Path, help="COCO results JSON to write")
    p.add_argument("--model", help="model name from models/manifest.toml (default: the config's)")
    p.add_argument("--config", type=Path, help="site config TOML whose [detector] section to use")
    p.add_argument("--models-dir", type=Path, help="models folder (default: the unit's)")


def image_files(folder: Path) -> list[Path]:
    """Images under ``folder``, sorted; a clear error if there are none."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def image_id(folder: Path, f: Path) -> str:
    return f.relative_to(folder).with_suffix("").as_posix()


def _read(f: Path):
    import cv2

    img = cv2.imread(str(f), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {f}")
    return img


def camera_groups(files: list[Path]) -> list[list[Path]]:
    """Files grouped as one fixed camera each: same folder and same image size, in order."""
    groups: dict[tuple[str, tuple[int, ...]], list[Path]] = {}
    for f in files:
        groups.setdefault((str(f.parent), _read(f).shape), []).append(f)
    return list(groups.values())


def detections_json(det, folder: Path, progress=None, live: bool = False) -> list[dict]:
    """COCO results for every image under ``folder`` (score >= 0.05); with the background
    prior, camera by camera (see the module docstring). ``live``: learn each camera's
    background online from its images in file order instead (as the unit does from its
    frames), so its first images are scored during warm-up."""
    results = []
    files = image_files(folder)
    if getattr(det, "background", None) is not None:
        order = []
        for group in camera_groups(files):
            order += [(f, group) for f in group]
    else:
        order = [(f, None) for f in files]
    t0 = time.monotonic()
    warmed = None
    for i, (f, group) in enumerate(order):
        if group is not None and group is not warmed:
            if live:
                det.reset_background()
            else:
                det.warm_up(_read(g) for g in group)
            warmed = group
        img = _read(f)
        d = det.detect(img, score_threshold=EVAL_SCORE)
        iid = image_id(folder, f)
        for (x1, y1, x2, y2), s, c in zip(
            d.boxes.tolist(), d.scores.tolist(), d.classes.tolist(), strict=True
        ):
            results.append(
                {
                    "image_id": iid,
                    "category_id": int(c),
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "score": round(float(s), 5),
                }
            )
        if progress and (i + 1) % 50 == 0:
            progress(
                f"{i + 1}/{len(files)} images, {(time.monotonic() - t0) / (i + 1) * 1e3:.0f} ms each"
            )
    return results


def run(args: argparse.Namespace) -> int:
    from firmware.detect import DetectorConfig, load_detector
    from firmware.paths import MODELS_DIR

    image_files(args.images)  # a bad folder is refused before the model loads
    cfg = DetectorConfig()
    if args.config:
        from firmware.config import load

        cfg = load(args.config).config.detector
    if args.model:
        cfg = cfg.model_copy(update={"model": args.model})
    det = load_detector(cfg, models_dir=args.models_dir or MODELS_DIR)
    print(
        f"vigil-eval detect: {det.name} ({det.backend}), tiles {cfg.tiles}, "
        f"background prior {'on' if cfg.background else 'off'}",
        file=sys.stderr,
    )
    res = detections_json(det, args.images, lambda m: print(m, file=sys.stderr))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res))
    print(f"vigil-eval detect: {len(res)} detections -> {args.out}", file=sys.stderr)
    return 0
