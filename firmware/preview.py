"""Annotated preview video (`vigil run --preview FILE.mp4`): zones, boxes and track ids drawn
on the anonymised frame, so a preview never shows an unmasked person."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from firmware.types import PERSON, Detections, Frame, Tracks

ZONE_COLOURS = {
    "high_value": (0, 170, 255),
    "till": (255, 200, 0),
    "exit": (0, 0, 255),
    "entrance": (0, 200, 0),
    "staff_only": (200, 0, 200),
    "fire_exit": (0, 0, 180),
    "general": (200, 200, 200),
}
LINE_COLOUR = (255, 255, 0)


def draw_zones(image: np.ndarray, zones, lines) -> None:
    """Zones (normalised polygons, coloured by purpose, disarmed ones labelled) and directed
    lines, drawn onto ``image`` in place."""
    h, w = image.shape[:2]
    scale = np.array([w, h], np.float32)
    for z in zones:
        pts = (np.asarray(z.polygon, np.float32) * scale).astype(np.int32)
        colour = ZONE_COLOURS.get(z.purpose, ZONE_COLOURS["general"])
        cv2.polylines(image, [pts], True, colour, 2, cv2.LINE_AA)
        label = f"{z.name}{'' if z.armed else ' (disarmed)'}"
        origin = tuple(int(v) for v in pts[0] + 4)
        cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    for ln in lines:
        a, b = ((np.asarray(p, np.float32) * scale).astype(int).tolist() for p in ln.points)
        cv2.arrowedLine(image, tuple(a), tuple(b), LINE_COLOUR, 2, cv2.LINE_AA, tipLength=0.03)
        cv2.putText(
            image, ln.name, (a[0] + 4, a[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, LINE_COLOUR, 1
        )


def draw_tracks(image: np.ndarray, tracks: Tracks, scale: tuple[float, float] = (1.0, 1.0)) -> None:
    """Track boxes with their ids (people green, carried objects magenta), in place; ``scale``
    maps the boxes' pixels onto ``image`` when they came from a smaller stream."""
    sx, sy = scale
    boxes = (tracks.boxes * np.array([sx, sy, sx, sy], np.float32)).astype(np.int32)
    for tid, box, cls in zip(tracks.ids.tolist(), boxes.tolist(), tracks.classes, strict=True):
        colour = (0, 255, 0) if cls == PERSON else (255, 0, 255)
        cv2.rectangle(image, (box[0], box[1]), (box[2], box[3]), colour, 2)
        cv2.putText(
            image,
            f"#{tid}",
            (box[0], max(12, box[1] - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            colour,
            1,
        )


def draw_overlay(image: np.ndarray, zones, lines, tracks: Tracks) -> np.ndarray:
    """Zones, lines and tracks drawn onto ``image`` in place (returned for convenience)."""
    draw_zones(image, zones, lines)
    draw_tracks(image, tracks)
    return image


class PreviewWriter:
    """Writes the annotated, anonymised frames to an MP4 (MPEG-4 part 2, plays everywhere)."""

    def __init__(self, path: str | Path, fps: float, zones=(), lines=()):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv"):
            raise ValueError(f"--preview {self.path}: use a .mp4 file name")
        if not self.path.parent.exists():
            raise OSError(f"--preview {self.path}: folder {self.path.parent} does not exist")
        self.fps = fps
        self.zones, self.lines = list(zones), list(lines)
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, masked: np.ndarray, frame: Frame, dets: Detections, tracks: Tracks) -> None:
        image = draw_overlay(
            masked.copy() if masked is frame.image else masked, self.zones, self.lines, tracks
        )
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h)
            )
            if not self._writer.isOpened():
                raise OSError(f"--preview {self.path}: cannot open a video writer")
        self._writer.write(image)
        self.frames += 1

    def push_frame(
        self, frame: Frame, masked: np.ndarray, dets: Detections, tracks: Tracks
    ) -> None:
        """The loop's frame-sink call (firmware.stages.FrameSink)."""
        self.write(masked, frame, dets, tracks)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
