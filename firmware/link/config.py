"""Config of the hub link (MQTT): broker, TLS material, command signing key, outbox bounds."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from firmware.config.base import Section

URL_RE = re.compile(r"^(mqtts?)://([^:/\s]+)(?::(\d{1,5}))?/?$")


class LinkConfig(Section):
    mqtt: str | None = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker URL, mqtt://HOST:PORT (plain TCP) or mqtts://HOST:PORT (TLS with the tls_* files); empty to run without a link",
    )
    topic_prefix: str = Field(
        "vigil", description="First topic level", pattern=r"^[A-Za-z0-9_-]{1,32}$"
    )
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = Field(
        30,
        description="MQTT keepalive; the broker publishes the Will (status offline) after 1.5x this",
    )
    client_id: str | None = Field(None, description="MQTT client id; default vigil-<site>-<unit>")
    tls_ca: str | None = Field(
        None,
        description="CA certificate (PEM) that signed the broker's certificate, for mqtts://; relative to the config file",
    )
    tls_cert: str | None = Field(
        None, description="This unit's client certificate (PEM), for mqtts://"
    )
    tls_key: str | None = Field(
        None, description="Private key (PEM) of this unit's client certificate, for mqtts://"
    )
    hub_public_key: str | None = Field(
        None,
        description="The hub's Ed25519 public key (PEM file, from `vigil-hub keygen`); commands must be signed by it. Without it every command is refused",
    )
    command_max_age_s: Annotated[float, Field(ge=1, le=3600)] = Field(
        30.0,
        description="A command whose timestamp is further than this from the unit's clock is refused as stale",
    )
    command_max_bytes: Annotated[int, Field(ge=1024, le=1_048_576)] = Field(
        65536, description="Larger command payloads are refused unread"
    )
    command_queue: Annotated[int, Field(ge=1, le=1024)] = Field(
        16,
        description="Commands that passed the cheap checks and wait for their signature check; past it a command is refused busy",
    )
    command_refusal_replies_per_s: Annotated[float, Field(ge=0.1, le=1000)] = Field(
        5.0,
        description="Most refusal replies a second per refusal code (a flood of bad commands is counted in metrics, answered only this often)",
    )
    metrics_interval_s: Annotated[float, Field(ge=1, le=3600)] = Field(
        10.0, description="Seconds between metrics messages"
    )
    tracks_hz: Annotated[float, Field(gt=0, le=30)] = Field(
        5.0, description="Most messages a second on the tracks topic (a frame's tracks each)"
    )
    outbox_max_events: Annotated[int, Field(ge=100, le=10_000_000)] = Field(
        100_000,
        description="Events kept on disk while the broker is unreachable; when full the oldest lowest-severity events are dropped (counted); alerts are never dropped",
    )
    outbox_sync: Literal["interval", "full"] = Field(
        "interval",
        description="'interval': events are committed at once (a crash loses nothing) and fsynced in the background every outbox_sync_interval_s (a power cut loses at most that); 'full': fsync per event before publish_event returns (power-safe, but the frame loop waits on the disk)",
    )
    outbox_sync_interval_s: Annotated[float, Field(ge=0.05, le=10)] = Field(
        1.0,
        description="Longest time an event stays in the outbox without fsync, with outbox_sync 'interval'",
    )
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = Field(
        200, description="Events published and not yet acknowledged by the broker at once"
    )
    reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = Field(
        0.5,
        description="First wait before reconnecting to the broker; doubles up to reconnect_max_s",
    )
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = Field(
        30.0, description="Longest wait between reconnection attempts"
    )

    @field_validator("mqtt")
    @classmethod
    def _url_ok(cls, url: str | None) -> str | None:
        if url in (None, ""):
            return None
        if not URL_RE.match(url):
            raise ValueError(f"{url!r} is not mqtt://HOST:PORT or mqtts://HOST:PORT")
        return url

    @model_validator(mode="after")
    def _tls_ok(self) -> LinkConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (a client certificate and its key)")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self


def parse_url(url: str) -> tuple[bool, str, int]:
    """``mqtt://h:p`` / ``mqtts://h:p`` -> (tls, host, port); default ports 1883 / 8883."""
    m = URL_RE.match(url)
    if not m:
        raise ValueError(f"{url!r} is not mqtt://HOST:PORT or mqtts://HOST:PORT")
    tls = m.group(1) == "mqtts"
    port = int(m.group(3)) if m.group(3) else (8883 if tls else 1883)
    if not 0 < port < 65536:
        raise ValueError(f"{url!r}: port {port} is out of range")
    return tls, m.group(2), port
