"""Incident recorder: anonymised frames around events, encoded in memory, encrypted at rest.

The frame loop pushes every anonymised frame; the last ``pre_event_s`` seconds stay in
memory as JPEG. An event of at least ``min_severity`` opens an incident (or extends the
open one): the buffered frames and the following ones up to ``post_event_s`` after the last
event record go to an in-memory encoder on a worker thread; the finished clip and the
incident record are encrypted with the provisioned key and stored, then retention runs.
Without a usable key nothing is recorded (never unencrypted) and ``error`` says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from firmware.events.records import Event, EventPhase, Severity
from firmware.recording.clip import MemoryClipWriter
from firmware.recording.config import RecordingConfig
from firmware.recording.crypto import RecordingKeyError, encrypt, key_id, load_key
from firmware.recording.store import IncidentStore
from firmware.types import Detections, Frame, Tracks

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Incident:
    id: str
    created: float
    start_time: float
    start_frame: int
    until: float
    events: list[dict[str, Any]] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    tracks: dict[int, list[list[float]]] = field(default_factory=dict)
    last_time: float = 0.0
    last_frame: int = 0
    frames: int = 0
    dropped: int = 0


class IncidentRecorder:
    """Records incidents around events; see the module docstring."""

    def __init__(
        self,
        cfg: RecordingConfig,
        data_dir: Path,
        fps: float,
        frame_size: tuple[int, int],
        model_info: dict[str, Any] | None = None,
        unit: str | None = None,
        key_path: str | Path | None = None,
    ):
        """``key_path`` overrides ``cfg.key_file`` (pass it resolved against the config's
        folder when the config gives a relative path)."""
        self.cfg = cfg
        self.fps = float(fps)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.model_info = dict(model_info or {})
        self.unit = unit
        self.store = IncidentStore(Path(data_dir), cfg.max_age_days, cfg.quota_mb)
        self.min_severity = Severity[cfg.min_severity.upper()]
        self.error: str | None = None
        self.recorded: list[str] = []
        self._key: bytes | None = None
        if cfg.enabled:
            try:
                self._key = load_key(key_path if key_path is not None else cfg.key_file)
            except RecordingKeyError as e:
                self.error = f"incident recording disabled: {e}"
                log.error("%s", self.error)
        else:
            self.error = "incident recording disabled in the config"
        n_pre = int(round(cfg.pre_event_s * self.fps))
        # at least the latest frame: the one whose event opens the incident
        self._buffer: deque[tuple[int, float, bytes]] = deque(maxlen=max(n_pre, 1))
        self._open: _Incident | None = None
        self._sealed: queue.Queue[Event] = queue.Queue()  # stored clips to announce
        self._closed = False
        self._queue: queue.Queue[tuple[str, Any, Any]] = queue.Queue(
            maxsize=max(int(self.fps * 2), 10)
        )
        self._worker: threading.Thread | None = None
        if self.available:
            self.store.enforce_retention()
            self._worker = threading.Thread(
                target=self._work, name="incident-recorder", daemon=True
            )
            self._worker.start()

    @property
    def available(self) -> bool:
        return self._key is not None and not self._closed

    # ---- frame loop side --------------------------------------------------------------
    def push(
        self, frame_index: int, timestamp: float, image: np.ndarray, tracks: Tracks | None = None
    ) -> None:
        """One anonymised frame (the caller must not modify it afterwards)."""
        if not self.available:
            return
        inc = self._open
        if inc is not None:
            if inc.active:
                inc.until = max(inc.until, timestamp + self.cfg.post_event_s)
            if timestamp > inc.until or timestamp - inc.start_time > self.cfg.max_clip_s:
                self._finish()
                inc = None
        if inc is not None:
            inc.last_time, inc.last_frame = timestamp, frame_index
            if tracks is not None and len(tracks):
                for tid, box in zip(tracks.ids.tolist(), tracks.boxes.tolist(), strict=True):
                    inc.tracks.setdefault(int(tid), []).append(
                        [frame_index, *(round(v, 1) for v in box)]
                    )
            self._send("frame", inc, image)
        ok, jpeg = cv2.imencode(
            ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.buffer_jpeg_quality]
        )
        if ok:
            self._buffer.append((frame_index, timestamp, jpeg.tobytes()))

    def take_sealed(self) -> list[Event]:
        """``incident`` events for the clips stored since the last call: the sha256 of each
        encrypted clip, so the hub's cases can reference it (docs/cases.md)."""
        out: list[Event] = []
        while True:
            try:
                out.append(self._sealed.get_nowait())
            except queue.Empty:
                return out

    @property
    def open_incident(self) -> str | None:
        """The incident being recorded now (escrow seals its originals under the same id)."""
        return None if self._open is None else self._open.id

    def push_frame(
        self, frame: Frame, masked: np.ndarray, dets: Detections, tracks: Tracks
    ) -> None:
        """The loop's frame-sink call (firmware.stages.FrameSink)."""
        self.push(frame.index, frame.timestamp, masked, tracks)

    def on_event(self, event: Event) -> str | None:
        """Attach an event to an incident; returns (and sets on the event) its incident id.

        An event of at least the configured severity opens an incident or extends the open
        one; lesser events (deterrent actions, updates) join an open incident's timeline.
        """
        if not self.available:
            return None
        inc = self._open
        serious = event.severity >= self.min_severity
        if inc is None and not serious:
            return None
        if inc is None:
            inc = self._start(event)
        inc.events.append(event.to_dict() | {"incident_id": inc.id})
        if serious:
            if event.phase in (EventPhase.START, EventPhase.UPDATE):
                inc.active.add(event.event_id)
            elif event.phase == EventPhase.END:
                inc.active.discard(event.event_id)
            inc.until = max(inc.until, event.time + self.cfg.post_event_s)
        elif event.phase == EventPhase.END:
            inc.active.discard(event.event_id)
        event.incident_id = inc.id
        return inc.id

    def close(self, timeout: float = 60.0) -> None:
        """Finish the open incident and wait until everything is encrypted and stored."""
        if self._open is not None:
            self._finish()
        if self._worker is not None:
            self._queue.put(("stop", None, None))
            self._worker.join(timeout)
            self._worker = None
        self._closed = True

    # ---- internals --------------------------------------------------------------------
    def _start(self, event: Event) -> _Incident:
        created = time.time()
        iid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created)) + "-" + uuid.uuid4().hex[:8]
        pre = [b for b in self._buffer if b[1] >= event.time - self.cfg.pre_event_s]
        start_time, start_frame = (pre[0][1], pre[0][0]) if pre else (event.time, event.frame)
        inc = _Incident(iid, created, start_time, start_frame, event.time + self.cfg.post_event_s)
        inc.last_time, inc.last_frame = start_time, start_frame
        self._open = inc
        self._send("open", inc, [b[2] for b in pre], block=True)
        log.info("incident %s opened by %s event %s", iid, event.type, event.event_id)
        return inc

    def _finish(self) -> None:
        inc, self._open = self._open, None
        self._send("close", inc, None, block=True)

    def _send(self, kind: str, inc: _Incident, payload: Any, block: bool = False) -> None:
        try:
            self._queue.put((kind, inc, payload), block=block, timeout=30 if block else None)
        except queue.Full:
            inc.dropped += 1
            if inc.dropped in (1, 100):
                log.warning("incident %s: encoder behind, frames dropped from the clip", inc.id)

    def _work(self) -> None:
        writers: dict[str, MemoryClipWriter] = {}
        while True:
            kind, inc, payload = self._queue.get()
            try:
                if kind == "stop":
                    for w in writers.values():
                        w.abort()
                    return
                if kind == "open":
                    w = writers[inc.id] = MemoryClipWriter(
                        self.cfg.codec, self.fps, self.frame_size
                    )
                    for jpeg in payload:
                        w.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
                        inc.frames += 1
                elif kind == "frame" and inc.id in writers:
                    writers[inc.id].write(payload)
                    inc.frames += 1
                elif kind == "close" and inc.id in writers:
                    self._store(inc, writers.pop(inc.id).finish())
            except Exception:  # a failed incident must not stop the recorder
                log.exception("incident %s: recording failed", getattr(inc, "id", "?"))
                if inc is not None and inc.id in writers:
                    writers.pop(inc.id).abort()

    def _store(self, inc: _Incident, clip: bytes) -> None:
        assert self._key is not None
        severities = [e["severity"] for e in inc.events]
        record = {
            "incident_id": inc.id,
            "unit": self.unit,
            "created": inc.created,
            "start_time": inc.start_time,
            "end_time": inc.last_time,
            "start_frame": inc.start_frame,
            "end_frame": inc.last_frame,
            "fps": self.fps,
            "frame_size": list(self.frame_size),
            "frames": inc.frames,
            "dropped_frames": inc.dropped,
            "codec": self.cfg.codec,
            "events": inc.events,
            "zones": sorted({e["zone"] for e in inc.events if e.get("zone")}),
            "deterrent_actions": [e for e in inc.events if e["type"] == "deterrent"],
            "tracks": {str(k): v for k, v in inc.tracks.items()},
            "models": self.model_info,
        }
        meta = {
            "id": inc.id,
            "created": inc.created,
            "start_time": inc.start_time,
            "duration_s": round(inc.last_time - inc.start_time, 3),
            "frames": inc.frames,
            "event_types": sorted({e["type"] for e in inc.events}),
            "max_severity": Severity(max(severities)).name.lower() if severities else None,
            "codec": self.cfg.codec,
            "key_id": key_id(self._key).hex(),
            "hold": None,
        }
        clip_enc = encrypt(self._key, clip, f"{inc.id}/clip")
        record_enc = encrypt(self._key, json.dumps(record).encode(), f"{inc.id}/record")
        del clip
        self.store.add(inc.id, clip_enc, record_enc, meta)
        self.recorded.append(inc.id)
        self._sealed.put(
            Event.instant(
                inc.last_time,
                inc.last_frame,
                type="incident",
                rule="recording",
                severity=Severity.INFO,
                incident_id=inc.id,
                explain={
                    "sha256": hashlib.sha256(clip_enc).hexdigest(),
                    "bytes": len(clip_enc),
                    "frames": inc.frames,
                    "duration_s": round(inc.last_time - inc.start_time, 3),
                },
            )
        )
        log.info("incident %s stored (%d frames)", inc.id, inc.frames)
        self.store.enforce_retention()
