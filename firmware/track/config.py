"""The `[tracker]` config section: thresholds and time limits of the multi-object tracker.

Times are in seconds (not frames) so one setting means the same at any frame rate and when
inference runs only on every n-th frame.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from firmware.config.base import Section
from firmware.types import CARRIED_OBJECTS, PERSON

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class TrackerConfig(Section):
    """Two-stage (ByteTrack-style) tracker with a constant-velocity Kalman filter."""

    classes: list[Annotated[int, Field(ge=0, le=1000)]] = Field(
        default_factory=lambda: [PERSON, *CARRIED_OBJECTS],
        description="COCO category ids that are tracked; detections of other classes are ignored",
        min_length=1,
    )
    high_score: Fraction = Field(
        0.6,
        description="Detections at or above this score are matched first and may start tracks",
    )
    low_score: Fraction = Field(
        0.1,
        description="Detections between this and high_score only extend existing tracks (second stage)",
    )
    new_track_score: Fraction = Field(
        0.7, description="Minimum score of an unmatched detection to start a new track"
    )
    cold_track_score: Fraction = Field(
        0.4,
        description="Unmatched detections between this and new_track_score start tentative tracks that need cold_confirm_hits matches in a row (to detections of at least this score) before they are reported, even on the first frame: a cold start on footage where the detector is less sure of people than new_track_score; equal to new_track_score turns the path off",
    )
    cold_confirm_hits: Annotated[int, Field(ge=1, le=30)] = Field(
        4,
        description="Consecutive matched frames before a track started below new_track_score is confirmed",
    )
    match_iou: Fraction = Field(
        0.25,
        description="First-stage gate on overlap x score^score_power between a track's predicted box and a high-score detection (overlap: IoU, times the height ratio when height_weight is set)",
    )
    loose_match_iou: Fraction = Field(
        0.05,
        description="Gate of a second, looser first-stage pass over the tracks and high-score detections still unmatched (fast motion, skipped frames); equal to match_iou disables it",
    )
    score_power: Annotated[float, Field(ge=0, le=4)] = Field(
        2.0,
        description="First-stage similarity is weighted by the detection score to this power (0: IoU only; 1: ByteTrack's fused score)",
    )
    height_weight: bool = Field(
        True,
        description="Weight every overlap by the ratio of the smaller to the larger box height (a person's height changes slowly)",
    )
    low_match_iou: Fraction = Field(
        0.5, description="Minimum IoU to match a low-score detection (second stage)"
    )
    tentative_match_iou: Fraction = Field(
        0.3, description="Minimum IoU to match a detection to a tentative (new) track"
    )
    confirm_hits: Annotated[int, Field(ge=1, le=30)] = Field(
        2, description="Consecutive matched frames before a new track is confirmed and reported"
    )
    max_lost_s: Annotated[float, Field(gt=0, le=600)] = Field(
        2.0,
        description="A lost (unmatched) moving track is kept this long for re-finding (a shopper passing behind a shelf end)",
    )
    stationary_max_lost_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        60.0,
        description="A lost track that was standing still is kept this long: shoppers at a shelf keep one id through occlusions and detector dropouts",
    )
    stationary_min_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        3.0,
        description="A track counts as standing still (long retention) after its centre has moved slower than stationary_speed for this long",
    )
    stationary_speed: Annotated[float, Field(ge=0, le=10)] = Field(
        0.15,
        description="A track is standing still when its centre moves slower than this many box heights per second",
    )
    refind_iou: Fraction = Field(
        0.3,
        description="Minimum IoU to re-find a track that was lost for longer than lost_grace_s",
    )
    lost_grace_s: Annotated[float, Field(ge=0, le=60)] = Field(
        0.3,
        description="For this long after losing a track it is matched like a tracked one (also to low-score detections); later it needs refind_iou",
    )
    report_lost_s: Annotated[float, Field(ge=0, le=60)] = Field(
        0.5,
        description="Lost tracks are also reported (state LOST, matched false, predicted box) for this long after their last detection, so masks and rules ride over a missed or skipped frame; 0 reports only tracks matched in the frame",
    )
    max_tracks: Annotated[int, Field(ge=1, le=10000)] = Field(
        500, description="Hard cap on live tracks; the oldest lost ones are dropped first"
    )
    std_position: Annotated[float, Field(gt=0, le=1)] = Field(
        1 / 20, description="Kalman position noise as a fraction of the box size, per frame"
    )
    std_velocity: Annotated[float, Field(gt=0, le=1)] = Field(
        1 / 160, description="Kalman velocity noise as a fraction of the box size, per frame"
    )

    @model_validator(mode="after")
    def _scores_ordered(self) -> TrackerConfig:
        if self.low_score > self.high_score:
            raise ValueError(
                f"low_score ({self.low_score}) must not exceed high_score ({self.high_score})"
            )
        if self.cold_track_score > self.new_track_score:
            raise ValueError(
                f"cold_track_score ({self.cold_track_score}) must not exceed new_track_score ({self.new_track_score})"
            )
        if self.stationary_max_lost_s < self.max_lost_s:
            raise ValueError(
                f"stationary_max_lost_s ({self.stationary_max_lost_s}) must be at least max_lost_s ({self.max_lost_s})"
            )
        return self
