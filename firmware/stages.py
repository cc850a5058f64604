"""The small interfaces of the frame loop's stages: what the loop, hub control and
diagnostics may call. Each stage package has one real implementation (named per Protocol);
tests and replays can hand in their own. Nothing outside a stage reads its private state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypedDict

import numpy as np

from firmware.events.records import Event
from firmware.types import Detections, Frame, Tracks


class DetectorTimings(TypedDict, total=False):
    """Milliseconds spent in each part of the last ``detect`` call (absent = not run)."""

    preprocess: float
    inference: float
    decode: float
    background: float  # the static-scene prior
    pose: float  # the pose stage on people


# Which loop metrics stage each detector timing counts toward.
TIMING_STAGES: dict[str, str] = {
    "preprocess": "preprocess",
    "background": "preprocess",
    "inference": "inference",
    "decode": "inference",
    "pose": "pose",
}


class Detector(Protocol):
    """firmware.detect.Detector: people and carried objects in one image."""

    last_timings: DetectorTimings

    @property
    def name(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def backend(self) -> str: ...

    def detect(self, image_bgr: np.ndarray, score_threshold: float | None = None) -> Detections: ...


class TrackerStage(Protocol):
    """firmware.track.Tracker."""

    def update(
        self, dets: Detections, timestamp: float, image: np.ndarray | None = None
    ) -> Tracks: ...


class RuleStage(Protocol):
    """firmware.rules.RuleEngine: tracks -> situations (events)."""

    def update(self, tracks: Tracks, timestamp: float, frame_index: int) -> Iterable[Event]: ...

    def close(self, timestamp: float, frame_index: int) -> Iterable[Event]:
        """End every open situation (end of stream, or before a new config replaces it)."""
        ...

    def set_armed(self, zone: str | None, armed: bool | None) -> None: ...


class DeterrentStage(Protocol):
    """firmware.deter.DeterrentController: owns its clock (``now``) and its self-test."""

    @property
    def outputs(self) -> Mapping[str, Any]: ...

    def now(self) -> float: ...

    def on_event(self, event: Event, now: float | None = None) -> list[Event]: ...

    def tick(self, now: float, frame: int | None = None) -> list[Event]: ...

    def mute(self, minutes: float, now: float, source: str = "hub") -> list[Event]: ...

    def test(self, name: str, now: float, on_s: float | None = None) -> list[Event]: ...

    def self_test(self, name: str, pulse_s: float = 0.2) -> dict[str, Any]: ...

    def state(self, now: float) -> dict[str, Any]: ...

    def close(self) -> None: ...


class AnonymiserStage(Protocol):
    """firmware.privacy.Anonymiser: masks people (and static masks) in stored frames."""

    def mask_static(self, image: np.ndarray) -> np.ndarray: ...

    def apply(
        self,
        image: np.ndarray,
        detections: Detections | None,
        tracks: Tracks | None,
        inference_ok: bool = True,
    ) -> np.ndarray: ...


class FrameSink(Protocol):
    """Where anonymised frames go: the incident recorder, the preview video."""

    def push_frame(
        self, frame: Frame, masked: np.ndarray, dets: Detections, tracks: Tracks
    ) -> None: ...

    def close(self) -> None: ...


class RecorderStage(FrameSink, Protocol):
    """firmware.recording.IncidentRecorder: a frame sink that also files events."""

    @property
    def available(self) -> bool: ...

    error: str | None

    @property
    def open_incident(self) -> str | None: ...

    def take_sealed(self) -> list[Event]: ...

    def on_event(self, event: Event) -> str | None: ...


class Outbox(Protocol):
    def depth(self) -> int: ...


class HubLink(Protocol):
    """firmware.link.Link as the loop sees it."""

    state: str
    outbox: Outbox

    def publish_event(self, event: Event) -> None: ...

    def publish_metrics(self, loop_metrics: dict[str, Any]) -> None: ...

    def set_alert(self, reasons: list[str]) -> None: ...

    def clear_alert(self) -> None: ...


class WatchdogStage(Protocol):
    """firmware.service.Watchdog (systemd notify)."""

    def ready(self, status: str | None = None) -> None: ...

    def frame_progressed(self) -> bool: ...

    def stopping(self) -> None: ...


class ProbeStage(Protocol):
    """firmware.diag.UnitProbe: what field diagnostics see of the running loop."""

    def frame(
        self,
        frame: Frame,
        detections: Detections | None = None,
        tracks: Tracks | None = None,
        stage_ms: dict[str, float] | None = None,
        *,
        inference_ok: bool = True,
    ) -> None: ...

    def event(self, ev: Event) -> None: ...

    def attach(self, cfg: Any, deterrents: DeterrentStage | None) -> None:
        """Point diagnostics at the stages of a newly applied config."""
        ...
