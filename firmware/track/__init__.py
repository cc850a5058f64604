"""Tracking stage: a ByteTrack-style multi-object tracker tuned for shoppers.

``Tracker(cfg.tracker, fps).update(detections, timestamp)`` -> ``Tracks``.
"""

from firmware.track.config import TrackerConfig
from firmware.track.tracker import Tracker

__all__ = ["Tracker", "TrackerConfig"]
