"""`vigil-eval anonymise --images DIR --out DIR`: each image anonymised as the unit would store it.

Same file stem, PNG. The unit's default privacy mode and default detector (or a site
config's, with ``--config``); every image is alone, without track history, so this is the
per-frame floor of the masking. An image on which inference fails is written fully masked,
as the unit fails closed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="folder of input images")
    p.add_argument("--out", required=True, help="folder for the anonymised PNGs (created)")
    p.add_argument("--config", help="site config whose [privacy] and [detector] to use")


def run(args: argparse.Namespace) -> int:
    from firmware.config import default, load
    from firmware.privacy import Anonymiser

    src = Path(args.images)
    if not src.is_dir():
        raise ValueError(f"--images {src}: not a folder")
    images = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"--images {src}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    cfg = (load(args.config) if args.config else default()).config
    try:
        from firmware.detect import load_detector
    except ImportError as e:
        raise ValueError(f"the default detector is not available in this build ({e})") from None
    detector = load_detector(cfg.detector)
    threshold = min(cfg.privacy.min_score, cfg.detector.score_threshold)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = unreadable = 0
    for k, path in enumerate(images, start=1):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            print(f"  {path.name}: not a readable image, skipped", file=sys.stderr)
            unreadable += 1
            continue
        anon = Anonymiser(cfg.privacy)  # alone: no history
        try:
            det = detector.detect(img, score_threshold=threshold)
            ok = True
        except Exception as e:  # noqa: BLE001 - fail closed like the unit
            print(f"  {path.name}: inference failed ({e}); written fully masked", file=sys.stderr)
            det, ok = None, False
            failed += 1
        masked = anon.apply(img, det, None, inference_ok=ok)
        target = out / f"{path.stem}.png"
        if not cv2.imwrite(str(target), masked):
            raise OSError(f"cannot write {target}")
        if k % 50 == 0 or k == len(images):
            print(f"  {k}/{len(images)} images", file=sys.stderr)
    written = len(images) - unreadable
    print(
        f"wrote {written} anonymised PNG(s) to {out} (mode {cfg.privacy.mode}, detector "
        f"{cfg.detector.model}, score >= {threshold:g})"
        + (f"; {failed} fully masked after inference failed" if failed else "")
        + (f"; {unreadable} unreadable skipped" if unreadable else "")
    )
    return 1 if unreadable else 0
