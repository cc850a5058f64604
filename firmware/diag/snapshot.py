"""An anonymised frame with zones, lines, detections and tracks drawn: for aiming the camera
and drawing zones. The image is the frame the unit stored (the frame loop's own anonymiser
output, with the masks tracks carry through missed detections), never a fresh anonymisation
of the raw frame: a snapshot can show no more than a recorded clip.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from firmware.config.schema import VigilConfig
from firmware.diag.probe import LastFrame
from firmware.preview import draw_tracks, draw_zones


class NoStoredFrame(ValueError):
    """The loop produced no anonymised frame (the unit stores none): nothing may be shown."""


def anonymise(cfg: VigilConfig, last: LastFrame) -> tuple[np.ndarray, str]:
    """A copy of the anonymised frame the loop stored for this frame (never the raw one)."""
    if last.stored is None:
        raise NoStoredFrame(
            "no anonymised frame: this unit stores no frames (recording off and no preview)"
        )
    return last.stored.copy(), "privacy.Anonymiser (the loop's stored frame)"


def render(cfg: VigilConfig, last: LastFrame) -> tuple[np.ndarray, dict[str, Any]]:
    """Masked image with overlays, and what was drawn."""
    img, how = anonymise(cfg, last)
    h, w = img.shape[:2]
    sx, sy = (
        (1.0, 1.0) if last.scale_from is None else (w / last.scale_from[0], h / last.scale_from[1])
    )
    draw_zones(img, cfg.zones, cfg.lines)
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
        draw_tracks(img, last.tracks, (sx, sy))
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
