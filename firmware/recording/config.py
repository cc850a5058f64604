"""Config of encrypted incident recording and its retention."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from firmware.config.base import Section


class EscrowConfig(Section):
    """Escrowed originals: an incident's unmasked frames sealed to a data controller's public
    key, which the unit cannot open (see docs/privacy.md before enabling: it needs a DPIA)."""

    enabled: bool = Field(
        False,
        description="Seal the original (unmasked) frames of each incident to public_key; off by default",
    )
    public_key: str = Field(
        "/etc/vigil/escrow.pub.pem",
        description="The data controller's X25519 public key (PEM, from `vigil incident keygen --escrow`); the private key never goes on the unit",
    )
    retention_h: Annotated[float, Field(gt=0, le=8784)] = Field(
        72.0,
        description="Escrowed originals are deleted after this many hours, unless their incident is on legal hold",
    )
    jpeg_quality: Annotated[int, Field(ge=50, le=100)] = Field(
        90, description="Original frames are held and sealed as JPEG at this quality"
    )


class RecordingConfig(Section):
    """Incident clips: anonymised frames around an event, encrypted at rest, kept briefly."""

    enabled: bool = Field(
        True,
        description="Record incident clips (without a readable key file nothing is recorded: clips are never stored unencrypted)",
    )
    key_file: str = Field(
        "/etc/vigil/recording.key",
        description="Provisioned AES-256 key (32 raw bytes or 64 hex digits), kept outside the repository and the data folder, readable by the service only",
    )
    min_severity: Literal["info", "notice", "warn", "alert"] = Field(
        "warn", description="Events of at least this severity open or extend an incident"
    )
    pre_event_s: Annotated[float, Field(ge=0, le=60)] = Field(
        5.0,
        description="Seconds of (anonymised) frames kept in memory and recorded before an event",
    )
    post_event_s: Annotated[float, Field(ge=0, le=300)] = Field(
        10.0, description="Seconds recorded after the last event record of an incident"
    )
    max_clip_s: Annotated[float, Field(ge=1, le=1800)] = Field(
        120.0, description="Longest clip; a longer situation continues in a new incident"
    )
    codec: Literal["mp4v", "MJPG"] = Field(
        "mp4v", description="Clip codec for OpenCV's encoder (mp4v in .mp4, MJPG in .avi)"
    )
    buffer_jpeg_quality: Annotated[int, Field(ge=50, le=100)] = Field(
        90, description="Buffered frames are held in memory as JPEG at this quality (bounds memory)"
    )
    max_age_days: Annotated[float, Field(gt=0, le=366)] = Field(
        30.0, description="Incidents older than this are deleted (unless on legal hold)"
    )
    quota_mb: Annotated[float, Field(gt=0, le=1_000_000)] = Field(
        2048.0, description="Disk quota for incidents; the oldest unheld ones go first when over"
    )
    escrow: EscrowConfig = Field(
        default_factory=EscrowConfig, description="Escrowed originals (off by default)"
    )
