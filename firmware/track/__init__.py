"""Tracking stage: a ByteTrack-style multi-object tracker tuned for shoppers.

``Tracker(cfg.tracker, fps).update(detections, timestamp)`` -> ``Tracks``.
"""

# firmware.config's package import loads the whole schema, which imports this package's
# config module; loading it first keeps `import firmware.track` free of a circular import.
from firmware.track.config import TrackerConfig
from firmware.track.tracker import Tracker

__all__ = ["Tracker", "TrackerConfig"]
