"""Config of the anonymisation stage: how people and static privacy areas are masked."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from firmware.config.base import Point, Section, check_polygon


class StaticMaskConfig(Section):
    """An area blanked in every stored or shown frame (PIN pad at a till, changing-room door)."""

    name: str = Field(
        ..., description="Mask name, for the data map", pattern=r"^[A-Za-z0-9_-]{1,64}$"
    )
    polygon: list[Point] = Field(
        ..., description="At least 3 points, normalised image coordinates (0..1, x right, y down)"
    )

    @field_validator("polygon")
    @classmethod
    def _polygon_ok(cls, pts: list[Point]) -> list[Point]:
        check_polygon(pts, "a static mask")
        return pts


class PrivacyConfig(Section):
    """Anonymisation of every frame that is stored or shown; never of inference frames."""

    mode: Literal["body", "head", "silhouette"] = Field(
        "body",
        description="What is masked: 'body' (whole person, the default a data-protection officer can sign off: clothing and gait identify too), 'head' (head/face only, for sites that must see hands), 'silhouette' (whole person as a flat shape that keeps the posture visible)",
    )
    fill: Literal["solid", "noise", "pixelate"] = Field(
        "solid",
        description="How masked pixels are replaced: 'solid' colour, random 'noise', or 'pixelate' (8x8-cell or coarser averages plus noise); all irreversible",
    )
    color: tuple[
        Annotated[int, Field(ge=0, le=255)],
        Annotated[int, Field(ge=0, le=255)],
        Annotated[int, Field(ge=0, le=255)],
    ] = Field((96, 96, 96), description="Solid fill colour, B, G, R")
    margin: Annotated[float, Field(ge=0, le=1)] = Field(
        0.1,
        description="Masks are enlarged by this fraction of the box's width/height on each side",
    )
    margin_px: Annotated[int, Field(ge=0, le=64)] = Field(
        4, description="...and by at least this many pixels on each side"
    )
    persist_frames: Annotated[int, Field(ge=0, le=300)] = Field(
        25,
        description="A track's mask stays this many frames after its last detection (the detector missing a frame must not unmask anyone)",
    )
    persist_growth: Annotated[float, Field(ge=0, le=0.2)] = Field(
        0.02,
        description="A persisting mask grows by this fraction of its size per frame since the last detection, to cover movement",
    )
    detection_persist_frames: Annotated[int, Field(ge=0, le=30)] = Field(
        3, description="Detections without a track are also masked for this many later frames"
    )
    min_score: Annotated[float, Field(ge=0, le=1)] = Field(
        0.05,
        description="Person detections at or above this score are masked: far lower than the tracker's threshold, since masking a false positive costs little and missing a person is what must not happen (the loop asks the detector for boxes down to this score)",
    )
    confident_score: Annotated[float, Field(ge=0, le=1)] = Field(
        0.2,
        description="Detections at or above this score are always masked, moving or still (a person who has become part of the background stays masked); weaker ones are 'low confidence': masked only where foreground or a track agrees (weak_foreground, weak_track_overlap) and when smaller than low_score_max_area. Chosen on the CAVIAR dev half A (docs/privacy.md)",
    )
    weak_foreground: Annotated[float, Field(ge=0, le=1)] = Field(
        0.1,
        description="A detection below confident_score is masked only where at least this fraction of its box is foreground in the static-scene model (something there moves or was not there before), or where it lies in a track (weak_track_overlap); without a scene model every one is masked",
    )
    weak_track_overlap: Annotated[float, Field(ge=0, le=1)] = Field(
        0.5,
        description="...or where at least this fraction of its box lies inside a current or remembered person track",
    )
    low_score_max_area: Annotated[float, Field(gt=0, le=1)] = Field(
        0.1, description="Largest low-confidence detection masked, as a fraction of the frame area"
    )
    head_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        0.35,
        description="Head mode: the top fraction of an upright person box taken as the head when no keypoints or face are known",
    )
    upright_aspect: Annotated[float, Field(ge=1, le=5)] = Field(
        1.6,
        description="Head mode: boxes at least this many times taller than wide count as upright; others (overhead views, lying, crouching) are masked whole",
    )
    recovery_frames: Annotated[int, Field(ge=1, le=100)] = Field(
        3,
        description="After inference failed or stalled, frames stay fully masked until this many consecutive frames had working inference",
    )
    max_frames_without_inference: Annotated[int, Field(ge=1, le=300)] = Field(
        30,
        description="More consecutive frames than this with no detections passed in (inference stalled or skipped) mask whole frames",
    )
    static_masks: list[StaticMaskConfig] = Field(
        default_factory=list, description="Areas always blanked, before anything else"
    )
    static_masks_before_inference: bool = Field(
        False,
        description="Also blank the static masks in the frames used for inference (the detector never sees a PIN pad)",
    )
