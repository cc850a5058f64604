"""Config of the hub link (MQTT)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from firmware.config.base import Section


class LinkConfig(Section):
    mqtt: str | None = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker URL, mqtt://HOST:PORT or mqtts://HOST:PORT; empty to run without a link",
    )
    topic_prefix: str = Field("vigil", description="First topic level")
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = Field(30, description="MQTT keepalive")
    client_id: str | None = Field(None, description="MQTT client id; default vigil-<site>-<unit>")

    @field_validator("mqtt")
    @classmethod
    def _url_ok(cls, url: str | None) -> str | None:
        if url in (None, ""):
            return None
        if not re.match(r"^mqtts?://[^:/\s]+(:\d{1,5})?/?$", url):
            raise ValueError(f"{url!r} is not mqtt://HOST:PORT or mqtts://HOST:PORT")
        return url
