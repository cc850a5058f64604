"""Config of store-system inputs: ``[inputs.<name>]`` dry contacts and the ``[till]`` journal.

Contact inputs are wired to GPIO pins checked against the board profile (see docs/inputs.md
for pull-ups and opto-isolation of 12/24 V EAS outputs).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from firmware.config.base import Section
from firmware.inputs.records import ContactKind

Pin = int | str
TILL_SOURCE = re.compile(r"^(serial://.+|tcp://[^:/\s]+:\d{1,5})$")


class ContactInputConfig(Section):
    kind: ContactKind = Field(
        ...,
        description="What is wired: eas_gate (security-tag gate alarm output), door (door contact), fire_exit (fire-exit door contact), panic (panic button)",
    )
    pin: Pin = Field(
        ..., description="BCM GPIO number (17) or gpiozero pin name ('GPIO17', 'BOARD11')"
    )
    zone: str | None = Field(
        None,
        description="The zone (under [[zones]]) the input belongs to: the gate's exit zone, the door's zone; required for eas_gate",
    )
    active_level: Literal["low", "high"] = Field(
        "low",
        description="Level the pin reads when the input is active: 'low' for a contact or opto-isolator output that closes to ground (the pin's pull-up is then on), 'high' for an output that drives the pin high (pull-down on)",
    )
    debounce_s: Annotated[float, Field(ge=0.0, le=5.0)] = Field(
        0.05,
        description="A change counts only after the pin has stayed at its new level this long (contact bounce, relay chatter)",
    )
    chatter_changes: Annotated[int, Field(ge=3, le=1000)] = Field(
        20,
        description="More raw changes than this within chatter_window_s is reported as chattering (a health event); the input is then ignored until it has been quiet for a window",
    )
    chatter_window_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0, description="Window over which raw changes are counted for chatter"
    )

    @model_validator(mode="after")
    def _zone_needed(self) -> ContactInputConfig:
        if self.kind == "eas_gate" and not self.zone:
            raise ValueError("an eas_gate input needs the zone people leave through (zone = ...)")
        return self


class TillPattern(Section):
    """One line pattern of a till journal: a regular expression with named groups ``till``,
    ``amount``, ``cashier`` (all optional); ``kind`` is the transaction it means, or
    ``context`` for a header line whose groups apply to the following transactions."""

    kind: Literal["context", "sale", "refund", "void", "no_sale", "price_override"] = Field(
        ..., description="Transaction kind, or 'context' for a header line"
    )
    regex: str = Field(..., description="Python regular expression matched against the line")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            rx = re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        unknown = set(rx.groupindex) - {"till", "amount", "cashier"}
        if unknown:
            raise ValueError(f"unknown named group(s) {sorted(unknown)}; use till, amount, cashier")
        return v


class TillConfig(Section):
    source: str = Field(
        ...,
        description="Where the journal comes from: 'serial:///dev/ttyUSB1' (a serial port; any pyserial URL after serial://) or 'tcp://HOST:PORT' (the unit connects and reads lines)",
    )
    zone: str = Field(..., description="The staff-side zone behind the till")
    customer_zone: str = Field(
        ..., description="The zone in front of the till where customers stand"
    )
    format: Literal["vigil", "receipt"] = Field(
        "vigil",
        description="Built-in journal format (docs/inputs.md): 'vigil' key=value lines, 'receipt' a receipt-printer journal; ignored when patterns are given",
    )
    patterns: list[TillPattern] | None = Field(
        None, description="Own line patterns instead of the built-in format, tried in order"
    )
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] = Field(
        9600, description="Serial speed, for serial:// sources"
    )
    encoding: str = Field("utf-8", description="Text encoding of the journal")
    secret_file: str | None = Field(
        None,
        description="File holding the site secret (32+ bytes) that pseudonymises cashier ids; default: made once under the data directory (till-secret, mode 0600)",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        v = v.strip()
        if not TILL_SOURCE.match(v):
            raise ValueError(
                f"{v!r}: expected serial:///dev/ttyUSB1 (or another pyserial URL) or tcp://HOST:PORT"
            )
        if v.startswith("tcp://") and not 1 <= int(v.rsplit(":", 1)[1]) <= 65535:
            raise ValueError(f"{v!r}: TCP port must be 1..65535")
        return v
