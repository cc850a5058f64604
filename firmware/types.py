"""Plain data passed between the frame-loop stages: frames, detections, tracks.

Arrays, not objects per person: every stage works on whole numpy arrays so the hot path
stays vectorised. Boxes are always ``x1, y1, x2, y2`` in pixels of the frame they came from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

# COCO category ids (the 91-id scheme used by COCO results files) the rules care about.
PERSON = 1
BACKPACK = 27
HANDBAG = 31
SUITCASE = 33
CARRIED_OBJECTS = (BACKPACK, HANDBAG, SUITCASE)


@dataclass(slots=True)
class Frame:
    """One camera frame. ``image`` is HxWx3 uint8 in BGR order (OpenCV's, and picamera2's
    "RGB888" memory order); ``lores`` is an optional smaller copy meant for inference."""

    index: int
    timestamp: float
    image: np.ndarray
    lores: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the main image."""
        h, w = self.image.shape[:2]
        return w, h


@dataclass(slots=True)
class Detections:
    """Detector output for one frame.

    boxes (N,4) float32 xyxy pixels; scores (N,) float32; classes (N,) int16 COCO ids;
    keypoints (N,17,3) float32 x, y, score in pixels (COCO keypoint order) when a pose model
    ran, NaN rows for objects without keypoints.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    keypoints: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int16)
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, mask: np.ndarray) -> Detections:
        """The subset where ``mask`` (bool or index array) is set."""
        kp = None if self.keypoints is None else self.keypoints[mask]
        return Detections(self.boxes[mask], self.scores[mask], self.classes[mask], kp)

    def people(self) -> Detections:
        return self.select(self.classes == PERSON)


class TrackState(enum.IntEnum):
    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2


@dataclass(slots=True)
class Tracks:
    """Tracker output for one frame: the tracks worth reporting (confirmed, plus lost ones
    still coasting when the tracker chooses to expose them).

    ids (N,) int64 stable per person; boxes (N,4) float32 xyxy; scores (N,) float32;
    classes (N,) int16; states (N,) int8 TrackState; velocities (N,2) float32 px/s of the
    box centre; keypoints as in Detections or None; matched (N,) bool: a detection
    supported the track in this frame.
    """

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    states: np.ndarray
    velocities: np.ndarray
    matched: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    keypoints: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Tracks:
        return cls(
            np.zeros((0,), np.int64),
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0,), np.int16),
            np.zeros((0,), np.int8),
            np.zeros((0, 2), np.float32),
            np.zeros((0,), bool),
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def select(self, mask: np.ndarray) -> Tracks:
        kp = None if self.keypoints is None else self.keypoints[mask]
        return Tracks(
            self.ids[mask],
            self.boxes[mask],
            self.scores[mask],
            self.classes[mask],
            self.states[mask],
            self.velocities[mask],
            self.matched[mask],
            kp,
        )
