"""`vigil-eval anonymise`: frames anonymised as the unit would store them.

``--images DIR --out DIR``: each image alone (no track history: the per-frame floor), same
file stem, PNG; the detector's static-scene model is first learnt from the folder's images
(the median a fixed camera's live model converges to). ``--video CLIP --out OUT.mp4``: the
unit's own path for a clip (or a folder of one camera's frames, in name order): the frame
loop with the detector, tracker, rules and anonymiser of the default config (or
``--config``), in frame order, no overlays; one output frame per input frame, same size.
Inference that fails gives fully masked frames, as the unit fails closed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from firmware.types import Detections, Frame, Tracks

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

log = logging.getLogger(__name__)

FrameHook = Callable[[np.ndarray, Frame, Tracks], None]


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of input images (each anonymised alone)")
    src.add_argument("--video", help="clip (or folder of frames) run through the unit's own path")
    p.add_argument(
        "--out", required=True, help="--images: folder for the PNGs (created); --video: OUT.mp4"
    )
    p.add_argument("--config", help="site config whose [privacy], [detector], [tracker] to use")


def run(args: argparse.Namespace) -> int:
    from firmware.config import default, load

    loaded = load(args.config) if args.config else default()
    if getattr(args, "video", None):
        n = anonymise_video(args.video, args.out, loaded)
        print(f"wrote {n} anonymised frame(s) to {args.out} (mode {loaded.config.privacy.mode})")
        return 0
    return anonymise_images(args.images, args.out, loaded.config)


class MaskedVideo:
    """The loop's preview slot without overlays: writes each anonymised frame as it is."""

    def __init__(self, path: str | Path | None, fps: float, on_frame: FrameHook | None = None):
        self.path, self.fps, self.on_frame = path, fps, on_frame
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def push_frame(
        self, frame: Frame, masked: np.ndarray, dets: Detections, tracks: Tracks
    ) -> None:
        if self.path is not None:
            if self._writer is None:
                h, w = masked.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
                if not self._writer.isOpened():
                    raise OSError(f"--out {self.path}: cannot open an MP4 writer there")
            self._writer.write(masked)
        if self.on_frame is not None:
            self.on_frame(masked, frame, tracks)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def anonymise_video(
    clip: str | Path, out: str | Path | None, loaded, on_frame: FrameHook | None = None
) -> int:
    """Run the unit's loop over ``clip`` (unpaced, every frame, no hub, no recording) and
    write the anonymised frames to ``out`` (None: only call ``on_frame``); returns the count."""
    from firmware.privacy import Anonymiser
    from firmware.unit import RunOptions, build_unit

    clip = Path(clip)
    if not clip.exists():
        raise ValueError(f"--video {clip}: no such file or folder")
    if out is not None:
        out = Path(out)
        if out.suffix.lower() != ".mp4":
            raise ValueError(f"--out {out}: must name an .mp4 file")
        out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-anonymise-") as tmp:
        cfg = loaded.config.model_copy(deep=True)
        cfg.recording.enabled = False  # nothing stored but the output
        cfg.deterrents = type(cfg.deterrents)()  # nothing driven
        loaded = type(loaded)(cfg, loaded.path, loaded.text)
        opts = RunOptions(source=str(clip), fast=True, mqtt="none", data_dir=tmp, watchdog=False)
        unit = build_unit(loaded, opts)
        s = unit.loop.s
        s.probe = None  # no diagnostics socket or log capture for an offline run
        s.anonymiser = Anonymiser(cfg.privacy)
        s.preview = writer = MaskedVideo(out, s.reader.fps, on_frame)
        result = unit.loop.run()
    if writer.frames != result.frames:
        raise OSError(f"{clip}: {result.frames} frames read but {writer.frames} written")
    if writer.frames == 0:
        raise ValueError(f"--video {clip}: no frames")
    return writer.frames


def anonymise_images(images: str | Path, out: str | Path, cfg) -> int:
    """Each image of a folder anonymised alone (see the module docstring); exit status."""
    from firmware.privacy import Anonymiser

    src = Path(images)
    if not src.is_dir():
        raise ValueError(f"--images {src}: not a folder")
    paths = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"--images {src}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    try:
        from firmware.detect import load_detector
    except ImportError as e:
        raise ValueError(f"the default detector is not available in this build ({e})") from None
    detector = load_detector(cfg.detector)
    threshold = min(cfg.privacy.min_score, cfg.detector.score_threshold)
    warm_up_from_stills(detector, paths, cfg.detector.background_warmup_frames)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failed = unreadable = 0
    for k, path in enumerate(paths, start=1):
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
        masked = anon.apply(img, det, None, inference_ok=ok, foreground=foreground_of(detector))
        target = out / f"{path.stem}.png"
        if not cv2.imwrite(str(target), masked):
            raise OSError(f"cannot write {target}")
        if k % 50 == 0 or k == len(paths):
            print(f"  {k}/{len(paths)} images", file=sys.stderr)
    written = len(paths) - unreadable
    print(
        f"wrote {written} anonymised PNG(s) to {out} (mode {cfg.privacy.mode}, detector "
        f"{cfg.detector.model}, score >= {threshold:g})"
        + (f"; {failed} fully masked after inference failed" if failed else "")
        + (f"; {unreadable} unreadable skipped" if unreadable else "")
    )
    return 1 if unreadable else 0


def warm_up_from_stills(detector, paths: list[Path], need: int) -> bool:
    """Learn the static-scene model from a camera's stills when there are at least ``need``
    of them (as many as a live unit watches before using it); fewer: no scene model, so
    every weak candidate is masked (a median of a few frames absorbs people who move little)."""
    if len(paths) < need:
        return False
    stills = (cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths)
    detector.warm_up(im for im in stills if im is not None)
    return True


def foreground_of(detector) -> np.ndarray | None:
    """The detector's foreground mask for its last frame (None: no static-scene model)."""
    return getattr(detector, "last_foreground", None)
