"""The ``[detector]`` config section: which models run, on what, and how small people are found."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from firmware.config.base import Section

TileGrid = tuple[Annotated[int, Field(ge=1, le=4)], Annotated[int, Field(ge=1, le=4)]]


class DetectorConfig(Section):
    model: str = Field("nanodet-m-416-int8", description="Model name from models/manifest.toml")
    threads: Annotated[int, Field(ge=1, le=8)] = Field(
        2, description="CPU threads for the interpreter"
    )
    edgetpu: bool = Field(
        False,
        description="Try the Coral Edge TPU delegate (loads <model>_edgetpu.tflite); falls back to the CPU with a logged warning",
    )
    score_threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        0.35, description="Minimum detection score kept for tracking"
    )
    every_nth_frame: Annotated[int, Field(ge=1, le=30)] = Field(
        1, description="Run inference on every n-th frame; the tracker predicts in between"
    )
    nms_iou: Annotated[float, Field(gt=0, le=1)] = Field(
        0.6, description="Boxes of one class overlapping more than this (IoU) are merged by NMS"
    )
    max_detections: Annotated[int, Field(ge=1, le=1000)] = Field(
        100, description="At most this many detections per frame, best first"
    )
    tiles: TileGrid = Field(
        (1, 1),
        description="Small-person handling: also run the model on a grid of overlapping tiles (columns, rows), each scaled up to the model's input; (1, 1) = whole frame only. Costs one inference per tile.",
    )
    tile_overlap: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.25, description="Overlap between neighbouring tiles, as a fraction of the tile size"
    )
    full_frame: bool = Field(
        True,
        description="With tiles, also run on the whole frame (finds people larger than a tile)",
    )
    classes: list[Annotated[int, Field(ge=1, le=90)]] = Field(
        [1, 27, 31, 33],
        description="COCO category ids reported: person 1 and the carried objects backpack 27, handbag 31, suitcase 33",
    )
    pose_model: str | None = Field(
        None,
        description="Pose model name from models/manifest.toml (for example 'movenet-multipose-int8'); adds keypoints to people. None = no pose stage",
    )
    face_model: str = Field(
        "blazeface-short",
        description="Face locator model name from models/manifest.toml, used by anonymisation: blazeface-short on head regions of people (recommended), blazeface-full on whole frames",
    )

    @model_validator(mode="after")
    def _person_reported(self) -> DetectorConfig:
        if 1 not in self.classes:
            raise ValueError("classes must include person (1): every stage after this needs it")
        return self
