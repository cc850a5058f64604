"""Recording stage: encrypted incident clips and records, retention, legal hold, audit log."""

from firmware.recording.audit import AuditLog
from firmware.recording.config import RecordingConfig
from firmware.recording.crypto import (
    DecryptionError,
    RecordingKeyError,
    generate_key_file,
    load_key,
)
from firmware.recording.recorder import IncidentRecorder
from firmware.recording.store import IncidentError, IncidentInfo, IncidentStore

__all__ = [
    "AuditLog",
    "DecryptionError",
    "IncidentError",
    "IncidentInfo",
    "IncidentRecorder",
    "IncidentStore",
    "RecordingConfig",
    "RecordingKeyError",
    "generate_key_file",
    "load_key",
]
