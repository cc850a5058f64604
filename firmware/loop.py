"""The frame loop: frame -> detect -> track -> rules -> anonymise -> events. It only wires
stages.

Each stage is built elsewhere (firmware/builder.py) and handed in; anything optional may be
None. Every event goes through one bus (firmware/events/bus.py), stamped once and delivered
in one order to recorder, deterrents, sinks, link and diagnostics. Per-stage time goes to
LoopMetrics. Commands from the hub arrive on other threads and are queued here, so every
stage is only ever touched from the loop's own thread.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from firmware.clock import SourceClock
from firmware.events import bus as order
from firmware.events.bus import EventBus, EventSink, Stamper
from firmware.events.records import Event, EventPhase, Severity
from firmware.metrics import LoopMetrics
from firmware.sources import FrameReader
from firmware.stages import (
    TIMING_STAGES,
    AnonymiserStage,
    Detector,
    DeterrentStage,
    FrameSink,
    HubLink,
    ProbeStage,
    RecorderStage,
    RuleStage,
    TrackerStage,
    WatchdogStage,
)
from firmware.types import Detections, Frame, Tracks

if TYPE_CHECKING:
    from firmware.floor import EventFloor
    from firmware.inputs.hub import StoreInputs
    from firmware.link.tracks import TracksPublisher
    from firmware.recording.escrow import EscrowSealer

log = logging.getLogger(__name__)

# Inference older than this many frames counts as "behind": stored frames are masked whole.
STALE_INFERENCE_FRAMES = 15


@dataclass
class Stages:
    """The stage objects of one unit. Only reader, detector, tracker and engine are required."""

    reader: FrameReader
    detector: Detector
    tracker: TrackerStage
    engine: RuleStage
    deterrents: DeterrentStage | None = None
    link: HubLink | None = None
    tracks_out: TracksPublisher | None = None  # the tracks topic
    floor: EventFloor | None = None  # [camera.floor]: events carry their tracks' floor position
    sinks: list[EventSink] = field(default_factory=list)
    anonymiser: AnonymiserStage | None = None
    recorder: RecorderStage | None = None
    escrow: EscrowSealer | None = None  # originals sealed per incident ([recording.escrow])
    preview: FrameSink | None = None
    watchdog: WatchdogStage | None = None
    every_nth_frame: int = 1
    score_threshold: float = 0.35  # detections kept for tracking and rules
    mask_score_threshold: float | None = None  # lower bar for what the anonymiser masks
    static_masks_before_inference: bool = False
    probe: ProbeStage | None = None  # what field diagnostics see of the loop
    inputs: StoreInputs | None = None  # contact inputs and the till journal


@dataclass
class LoopResult:
    frames: int
    events: Counter
    metrics: LoopMetrics
    stopped_by: str


class FrameLoop:
    def __init__(
        self,
        stages: Stages,
        *,
        status_out: TextIO | None = None,
        max_frames: int | None = None,
        metrics_interval_s: float = 10.0,
        stamper: Stamper | None = None,
        clock: SourceClock | None = None,
    ):
        """``stamper`` names the unit, site and session on every event (the hub link's own
        when there is one, so the outbox and ``--events-out`` number events alike)."""
        self.s = stages
        self.clock = clock or SourceClock()
        self.bus = EventBus(stamper or Stamper(None, None, None))
        self._subscribe_stages()
        self.metrics = LoopMetrics()
        self.status_out = status_out
        self.max_frames = max_frames
        self.metrics_interval_s = metrics_interval_s
        self.event_counts: Counter = Counter()
        self.people = 0
        self.tracks = Tracks.empty()
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._stop_reason = "end of stream"
        self._last_inference_frame = -(10**9)
        self.inference_failing = False
        self._camera_alert = False
        self._prev_totals: dict[str, float] = {}

    def _subscribe_stages(self) -> None:
        """The unit's own consumers, in the bus's documented order. Each reads the current
        stage from ``self.s``, so a live config apply redirects them at once."""

        def floor(ev: Event) -> None:
            if self.s.floor is not None:
                self.s.floor.stamp(ev)

        def recorder(ev: Event) -> None:
            if self.s.recorder is not None:
                self.s.recorder.on_event(ev)

        def deterrents(ev: Event) -> list[Event] | None:
            return None if self.s.deterrents is None else self.s.deterrents.on_event(ev)

        def counts(ev: Event) -> None:
            self.event_counts[ev.type] += ev.phase in (EventPhase.START, EventPhase.INSTANT)

        def sinks(ev: Event) -> None:
            for sink in self.s.sinks:
                sink.emit(ev)

        def link(ev: Event) -> None:
            if self.s.link is not None:
                self.s.link.publish_event(ev)

        def diagnostics(ev: Event) -> None:
            if self.s.probe is not None:
                self.s.probe.event(ev)

        self.bus.subscribe(order.FLOOR, "floor", floor)
        self.bus.subscribe(order.RECORDER, "recorder", recorder)
        self.bus.subscribe(order.DETERRENTS, "deterrents", deterrents)
        self.bus.subscribe(order.COUNTS, "counts", counts)
        self.bus.subscribe(order.SINKS, "sinks", sinks)
        self.bus.subscribe(order.LINK, "link", link)
        self.bus.subscribe(order.DIAGNOSTICS, "diagnostics", diagnostics)

    # -- control from other threads ------------------------------------------------------
    def submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop's thread before the next frame (hub commands)."""
        self._commands.put(fn)

    def report(self, code: str, detail: str, severity: Severity = Severity.ALERT) -> None:
        """Queue a health event (emitted on the loop's thread before the next frame)."""
        self.submit(lambda: self._health(code, detail, severity))

    def stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            self.stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def now(self) -> float:
        """Source time: the last frame's timestamp plus wall time since it arrived, so timers
        (deterrent on-times) keep running when the camera stalls."""
        return self.clock.now()

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> LoopResult:
        s = self.s
        if s.watchdog is not None:
            s.watchdog.ready()
        next_status = time.monotonic() + 1.0
        next_metrics = time.monotonic() + self.metrics_interval_s
        try:
            while not self._stop.is_set():
                self._run_commands()
                with self.metrics.stage("capture"):
                    frame = s.reader.next(timeout=0.5)
                self._source_health()
                if frame is None:
                    if s.reader.ended:
                        break
                    self._tick_idle()
                    continue
                self._process(frame)
                if s.watchdog is not None:
                    s.watchdog.frame_progressed()
                if self.max_frames is not None and self.metrics.frames >= self.max_frames:
                    self._stop_reason = "frame limit"
                    break
                wall = time.monotonic()
                if wall >= next_status:
                    self._print_status(frame)
                    next_status = wall + 1.0
                if wall >= next_metrics and s.link is not None:
                    s.link.publish_metrics(self._hub_metrics())
                    next_metrics = wall + self.metrics_interval_s
        finally:
            self._finish()
        return LoopResult(self.metrics.frames, self.event_counts, self.metrics, self._stop_reason)

    def _hub_metrics(self) -> dict:
        """The loop's figures for the hub: timings, people and arming per zone, unit arming."""
        engine = self.s.engine
        return {
            **self.metrics.snapshot(),
            "zones": engine.zone_figures(),
            "armed": engine.unit_armed,
        }

    def _process(self, frame: Frame) -> None:
        s, m = self.s, self.metrics
        self.clock.frame(frame.timestamp)
        all_dets = self._detect(frame)
        dets = all_dets
        if all_dets is not None and len(all_dets):
            dets = all_dets.select(all_dets.scores >= s.score_threshold)
        dets = dets if dets is not None else Detections.empty()
        with m.stage("tracking"):
            self.tracks = s.tracker.update(dets, frame.timestamp, image=frame.image)
        if s.floor is not None:
            s.floor.update(self.tracks.ids, self.tracks.boxes, frame.size, frame.timestamp)
        if s.tracks_out is not None:
            s.tracks_out(self.tracks, frame.timestamp, frame.index, frame.size)
        with m.stage("rules"):
            inputs = s.inputs.drain(frame.timestamp) if s.inputs is not None else ()
            events = list(s.engine.update(self.tracks, frame.timestamp, frame.index, inputs))
        with m.stage("privacy"):
            masked = self._masked(frame, all_dets)
            if masked is not None:  # before the events: an incident they open holds this frame
                for sink in (s.recorder, s.preview):
                    if sink is not None:
                        sink.push_frame(frame, masked, dets, self.tracks)
        with m.stage("publish"):
            self.emit(events)  # deterrent actions they cause come back through the bus
            if s.recorder is not None:
                self.emit(s.recorder.take_sealed())  # clips stored since: their sha256
        if s.escrow is not None and s.recorder is not None:
            with m.stage("privacy"):  # after the events: the incident they opened holds it
                s.escrow.push(frame.index, frame.timestamp, frame.image, s.recorder.open_incident)
        with m.stage("act"):
            if s.deterrents is not None:
                self.emit(s.deterrents.tick(frame.timestamp, frame.index))
        self.people = int(np.count_nonzero(dets.classes == 1)) if len(dets) else 0
        if s.probe is not None:
            totals = m.totals_ms
            stage_ms = {k: v - self._prev_totals.get(k, 0.0) for k, v in totals.items()}
            self._prev_totals = dict(totals)
            s.probe.frame(
                frame,
                all_dets,
                self.tracks,
                stage_ms,
                inference_ok=not self.inference_failing,
                stored=masked,
            )
        m.frame_done()
        m.dropped = s.reader.dropped

    def _detect(self, frame: Frame) -> Detections | None:
        """This frame's detections in main-image pixels (down to the masking threshold when
        an anonymiser runs), or None when inference is skipped on this frame."""
        s, m = self.s, self.metrics
        if frame.index % s.every_nth_frame != 0:
            return None
        image = frame.lores if frame.lores is not None else frame.image
        if s.static_masks_before_inference and s.anonymiser is not None:
            image = s.anonymiser.mask_static(image)
        threshold = s.score_threshold
        if s.anonymiser is not None and s.mask_score_threshold is not None:
            threshold = min(threshold, s.mask_score_threshold)
        try:
            dets = s.detector.detect(image, score_threshold=threshold)
        except Exception as e:  # noqa: BLE001 - a failing model must not stop the unit; privacy fails closed
            if not self.inference_failing:
                log.error(
                    "inference failed: %s (stored frames are masked whole until it recovers)", e
                )
                self._health("model_failed", f"inference failed: {e}", Severity.ALERT)
            self.inference_failing = True
            return Detections.empty()
        for key, ms in s.detector.last_timings.items():
            stage = TIMING_STAGES.get(key)
            if stage is not None:
                m.add(stage, float(ms))
        if self.inference_failing:
            log.info("inference recovered")
            self.inference_failing = False
            self._health("model_recovered", "inference recovered", Severity.INFO)
        self._last_inference_frame = frame.index
        if image is not frame.image and len(dets):
            sx = frame.image.shape[1] / image.shape[1]
            sy = frame.image.shape[0] / image.shape[0]
            dets.boxes = dets.boxes * np.array([sx, sy, sx, sy], np.float32)
            if dets.keypoints is not None:
                dets.keypoints = dets.keypoints * np.array([sx, sy, 1.0], np.float32)
        return dets

    def _masked(self, frame: Frame, dets: Detections | None) -> np.ndarray | None:
        s = self.s
        if s.anonymiser is None or (s.recorder is None and s.preview is None and s.probe is None):
            return None
        ok = not self.inference_failing and frame.index - self._last_inference_frame <= max(
            STALE_INFERENCE_FRAMES, s.every_nth_frame
        )
        fg = getattr(s.detector, "last_foreground", None) if dets is not None else None
        return s.anonymiser.apply(frame.image, dets, self.tracks, inference_ok=ok, foreground=fg)

    def emit(self, events: Iterable[Event]) -> list[Event]:
        """Publish events on the bus (loop thread only); returns them with what they caused."""
        return self.bus.publish(events)

    def _tick_idle(self) -> None:
        """No frame this time: keep timers (deterrent off-switching) running."""
        if self.s.deterrents is not None:
            self.emit(self.s.deterrents.tick(self.now()))

    def _source_health(self) -> None:
        for notice in self.s.reader.take_notices():
            if notice.kind == "reopened":
                self._health("camera_reopened", notice.detail, Severity.NOTICE)
                if self._camera_alert and self.s.link is not None:
                    self.s.link.clear_alert()
                self._camera_alert = False
            else:
                self._health(
                    "no_frames" if notice.kind == "stalled" else "camera_failed",
                    notice.detail,
                    Severity.ALERT,
                )
                if not self._camera_alert and self.s.link is not None:
                    self.s.link.set_alert(["no_frames"])
                self._camera_alert = True

    def _health(self, code: str, detail: str, severity: Severity) -> None:
        self.emit(
            [
                Event.instant(
                    self.now(),
                    self.metrics.frames,
                    type="health",
                    rule=code,
                    severity=severity,
                    explain={"code": code, "detail": detail},
                )
            ]
        )

    def _run_commands(self) -> None:
        while True:
            try:
                fn = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception:  # noqa: BLE001 - a bad command must not stop the loop
                log.exception("command failed")

    def _print_status(self, frame: Frame) -> None:
        if self.status_out is None:
            return
        link = ""
        if self.s.link is not None:
            link = f"  link {self.s.link.state} outbox {self.s.link.outbox.depth()}"
        total_events = sum(self.event_counts.values())
        print(
            f"[{frame.timestamp:8.1f} s] frame {frame.index:6d}  fps {self.metrics.fps_recent():5.1f}"
            f"  people {self.people:2d}  tracks {len(self.tracks):2d}  events {total_events}{link}",
            file=self.status_out,
            flush=True,
        )

    def _finish(self) -> None:
        s = self.s
        now = self.now()
        try:
            self.emit(s.engine.close(now, max(self.metrics.frames - 1, 0)))
            if s.deterrents is not None:
                self.emit(s.deterrents.tick(now))
        finally:
            if s.recorder is not None:
                _quiet(s.recorder.close)  # waits until the last clip is stored
                _quiet(lambda: self.emit(s.recorder.take_sealed()))
            for closer in (s.escrow, s.preview, s.deterrents, s.inputs):
                if closer is not None:
                    _quiet(closer.close)
            for sink in s.sinks:
                _quiet(sink.close)
            s.reader.stop()
            if s.watchdog is not None:
                _quiet(s.watchdog.stopping)


def _quiet(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        log.exception("error while shutting down")
