"""An anonymised frame with zones, lines, detections and tracks drawn: for aiming the camera
and drawing zones. People are masked before anything is drawn; the image never leaves unmasked.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from firmware.config.schema import VigilConfig
from firmware.diag.probe import LastFrame

ZONE_COLOURS = {
    "high_value": (0, 170, 255),
    "till": (255, 200, 0),
    "exit": (0, 0, 255),
    "entrance": (0, 200, 0),
    "staff_only": (200, 0, 200),
    "fire_exit": (0, 0, 180),
    "general": (200, 200, 200),
}


def anonymise(cfg: VigilConfig, last: LastFrame) -> tuple[np.ndarray, str]:
    """The frame with people masked: the privacy stage's Anonymiser when built in, else boxes
    filled solid; fails closed (whole frame blanked) when the frame has no inference result."""
    privacy_cfg = getattr(cfg, "privacy", None)
    try:
        from firmware.privacy import Anonymiser  # type: ignore[attr-defined]
    except ImportError:
        Anonymiser = None  # noqa: N806
    if Anonymiser is not None and privacy_cfg is not None:
        anon = Anonymiser(privacy_cfg)
        return (
            anon.apply(
                last.image, last.detections, last.tracks, last.inference_ok, last.scale_from
            ),
            "privacy.Anonymiser",
        )
    out = last.image.copy()
    h, w = out.shape[:2]
    if not last.inference_ok or (last.detections is None and last.tracks is None):
        out[:] = 64
        return out, "blanked (no inference result for this frame)"
    sx, sy = (
        (1.0, 1.0) if last.scale_from is None else (w / last.scale_from[0], h / last.scale_from[1])
    )
    for boxes in _people_boxes(last):
        for x1, y1, x2, y2 in boxes.tolist():
            bw, bh = (x2 - x1) * 0.1, (y2 - y1) * 0.1  # 10 % margin: masks err on the wide side
            a = (int(max(0, (x1 - bw) * sx)), int(max(0, (y1 - bh) * sy)))
            b = (int(min(w, (x2 + bw) * sx)), int(min(h, (y2 + bh) * sy)))
            out[a[1] : b[1], a[0] : b[0]] = 96
    return out, "solid boxes"


def _people_boxes(last: LastFrame) -> list[np.ndarray]:
    from firmware.types import PERSON

    out = []
    if last.detections is not None and len(last.detections):
        out.append(last.detections.boxes[last.detections.classes == PERSON])
    if last.tracks is not None and len(last.tracks):
        out.append(last.tracks.boxes[last.tracks.classes == PERSON])
    return out


def render(cfg: VigilConfig, last: LastFrame) -> tuple[np.ndarray, dict[str, Any]]:
    """Masked image with overlays, and what was drawn."""
    img, how = anonymise(cfg, last)
    h, w = img.shape[:2]
    sx, sy = (
        (1.0, 1.0) if last.scale_from is None else (w / last.scale_from[0], h / last.scale_from[1])
    )
    scale = np.array([w, h], np.float32)
    for z in cfg.zones:
        pts = (np.asarray(z.polygon, np.float32) * scale).astype(np.int32)
        colour = ZONE_COLOURS.get(z.purpose, (200, 200, 200))
        cv2.polylines(img, [pts], True, colour, 2, cv2.LINE_AA)
        label = f"{z.name}{'' if z.armed else ' (disarmed)'}"
        cv2.putText(
            img,
            label,
            tuple(int(v) for v in pts[0] + 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            colour,
            1,
            cv2.LINE_AA,
        )
    for ln in cfg.lines:
        a, b = ((np.asarray(p, np.float32) * scale).astype(int).tolist() for p in ln.points)
        cv2.arrowedLine(img, tuple(a), tuple(b), (255, 255, 0), 2, cv2.LINE_AA, tipLength=0.03)
        cv2.putText(
            img, ln.name, (a[0] + 4, a[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1
        )
    n_det = 0
    if last.detections is not None:
        n_det = len(last.detections)
        for x1, y1, x2, y2 in last.detections.boxes.tolist():
            cv2.rectangle(
                img, (int(x1 * sx), int(y1 * sy)), (int(x2 * sx), int(y2 * sy)), (0, 255, 255), 1
            )
    n_tracks = 0
    if last.tracks is not None:
        n_tracks = len(last.tracks)
        for tid, (x1, y1, x2, y2) in zip(
            last.tracks.ids.tolist(), last.tracks.boxes.tolist(), strict=True
        ):
            p1, p2 = (int(x1 * sx), int(y1 * sy)), (int(x2 * sx), int(y2 * sy))
            cv2.rectangle(img, p1, p2, (0, 255, 0), 2)
            cv2.putText(
                img,
                f"#{tid}",
                (p1[0] + 2, p1[1] + 16),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.55,
                (0, 255, 0),
                2,
            )
    cv2.putText(
        img,
        f"frame {last.index}  t={last.timestamp:.1f}s",
        (8, h - 8),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (255, 255, 255),
        1,
    )
    return img, {
        "frame": last.index,
        "timestamp": last.timestamp,
        "size": [w, h],
        "zones": len(cfg.zones),
        "lines": len(cfg.lines),
        "detections": n_det,
        "tracks": n_tracks,
        "anonymised_by": how,
    }


def snapshot_png(
    cfg: VigilConfig, last: LastFrame, max_width: int = 640
) -> tuple[bytes, dict[str, Any]]:
    img, info = render(cfg, last)
    h, w = img.shape[:2]
    if w > max_width:
        img = cv2.resize(img, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    info["png_bytes"] = int(buf.size)
    return buf.tobytes(), info
