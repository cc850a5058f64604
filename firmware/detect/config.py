"""The ``[detector]`` config section: which models run, on what, and how small people are found."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from firmware.config.base import Section

TileGrid = tuple[Annotated[int, Field(ge=1, le=4)], Annotated[int, Field(ge=1, le=4)]]


class DetectorConfig(Section):
    model: str = Field(
        "nanodet-m-512x384-int8",
        description="Model name from models/manifest.toml (the 512x384 build suits 4:3 cameras; nanodet-m-416-int8 needs about 10% less inference time)",
    )
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
    flip_test: bool = Field(
        True,
        description="Test-time flip: also run the model on the mirror image of each window and average the two outputs cell by cell (steadier scores for small, low-contrast people: CAVIAR AP50 0.382 -> 0.413). Costs a second inference per window, about half the loop's frame rate; false where frame rate matters more (a Pi 4 without an Edge TPU)",
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
    background: bool = Field(
        True,
        description="Static-scene prior for a fixed camera: re-score person candidates by how much of each box differs from a background model of the scene (moving people rise above static furniture); applied after warm-up and only while the scene is stable. Turn off for a moving camera",
    )
    background_width: Annotated[int, Field(ge=32, le=640)] = Field(
        160, description="Width in pixels of the low-resolution background model"
    )
    background_threshold: Annotated[float, Field(ge=1, le=128)] = Field(
        20.0,
        description="A pixel is foreground where it differs from the background by more than this many grey levels (any channel, after removing the frame's overall brightness shift)",
    )
    background_step: Annotated[float, Field(gt=0, le=32)] = Field(
        0.5,
        description="Live update: grey levels per analysed frame each background pixel moves towards the frame (slower: people standing still fade in later, a moved chair is learnt later); not updated under confirmed people",
    )
    background_warmup_frames: Annotated[int, Field(ge=1, le=100000)] = Field(
        25,
        description="Live frames seen before the prior is applied (learning the scene faster meanwhile)",
    )
    background_min_stills: Annotated[int, Field(ge=2, le=100000)] = Field(
        8,
        description="Evaluation on stills: a camera (sub-folder and image size) needs at least this many images to build its background from their median; fewer: no prior",
    )
    background_max_foreground: Annotated[float, Field(gt=0, le=1)] = Field(
        0.4,
        description="The prior is not applied to a frame where more than this fraction of the pixels differ from the background (camera moved, lights changed, not a fixed scene)",
    )
    background_weight: Annotated[float, Field(ge=0, le=1)] = Field(
        0.7,
        description="Weight of the foreground evidence in the combined person score: score^(1-w) * min(1, fg/full)^w * coverage",
    )
    background_full: Annotated[float, Field(gt=0, le=1)] = Field(
        0.3,
        description="Foreground fraction of a box that counts as full evidence of a moving person (a person seen from above fills about a third to a half of their box)",
    )
    background_candidate_score: Annotated[float, Field(ge=0.005, le=1)] = Field(
        0.02,
        description="With the prior, person candidates are decoded down to this detector score before re-scoring",
    )
    background_protect_score: Annotated[float, Field(ge=0, le=1)] = Field(
        0.05,
        description="Person candidates the detector alone scores at least this are never lowered by the prior, only lifted (so the anonymiser, which masks down to [privacy].min_score, never loses a person the detector found); 1 = the prior may also demote and drop static candidates",
    )
    background_nms_iou: Annotated[float, Field(gt=0, le=1)] = Field(
        0.45,
        description="NMS overlap for re-scored people (the prior keeps many low-score duplicates alive; a lower overlap merges them)",
    )
    background_refine: Annotated[float, Field(ge=0, le=1)] = Field(
        0.5,
        description="Move each kept person box this fraction of the way towards the extent of the foreground around it (0 = off)",
    )

    @model_validator(mode="after")
    def _person_reported(self) -> DetectorConfig:
        if 1 not in self.classes:
            raise ValueError("classes must include person (1): every stage after this needs it")
        return self
