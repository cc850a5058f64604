"""Config of the deterrent outputs wired to the unit, and of how rules escalate through them.

``[deterrents.<name>]`` describes one output (a GPIO light, strobe, relay or buzzer, a voice
message played through ALSA, or a serial siren/audio module) with its timing and safety
limits. ``[deterrence]`` holds what is shared: quiet hours, the staff mute, and the
escalation policy of each rule (``[deterrence.escalation.<rule>]``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from firmware.config.base import NonNegSeconds, PosSeconds, Section, TimeWindow, parse_window

OutputKind = Literal["light", "strobe", "relay", "buzzer", "voice", "serial"]
GPIO_KINDS = frozenset({"light", "strobe", "relay", "buzzer"})
AUDIBLE_KINDS = frozenset({"buzzer", "voice", "serial"})

Pin = int | str
MAX_ON_S = 3600.0  # safety limits are finite and bounded: an hour on at most...
DAY_S = 86400.0  # ... and windows/cooldowns of a day at most


class DeterrentConfig(Section):
    kind: OutputKind = Field(
        "light",
        description="What is wired: light/strobe (LED or lamp driver), relay, buzzer (GPIO); voice (a recorded message played through ALSA); serial (a siren or audio module on a serial port)",
    )
    pin: Pin | None = Field(
        None,
        description="BCM GPIO number (17) or gpiozero pin name ('GPIO17', 'BOARD11'); required for light/strobe/relay/buzzer, optional amplifier/power enable for voice/serial",
    )
    active_high: bool = Field(
        True, description="False when the output is on at a low level (many relay boards)"
    )
    on_s: Annotated[PosSeconds, Field(le=MAX_ON_S)] = Field(
        5.0, description="How long the output stays on per activation"
    )
    cooldown_s: Annotated[NonNegSeconds, Field(le=DAY_S)] = Field(
        60.0, description="Minimum time after switching off before it may switch on again"
    )
    pattern: Literal["steady", "blink"] | None = Field(
        None, description="steady or blink while on; default blink for a strobe, else steady"
    )
    brightness: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0,
        description="Light/strobe: brightness 0..1; below 1 drives the pin with PWM (gpiozero PWMLED)",
    )
    blink_on_s: Annotated[float, Field(ge=0.02, le=10)] = Field(
        0.1, description="On time of one blink (pattern = blink)"
    )
    blink_off_s: Annotated[float, Field(ge=0.02, le=10)] = Field(
        0.1, description="Off time of one blink (pattern = blink)"
    )
    tone_hz: Annotated[float, Field(ge=50, le=10000)] | None = Field(
        None,
        description="Buzzer: play this tone on a passive speaker (gpiozero TonalBuzzer, needs PWM); unset = an active buzzer switched on/off",
    )
    audio_file: str | None = Field(
        None, description="Voice: WAV file to play (relative to the config file's folder)"
    )
    alsa_device: str = Field("default", description="Voice: ALSA device for aplay -D")
    player: list[str] = Field(
        ["aplay", "-q", "-D", "{device}", "{file}"],
        description="Voice: command that plays the file; {device} and {file} are filled in",
        min_length=1,
    )
    port: str | None = Field(
        None, description="Serial: the module's serial device (/dev/ttyUSB0) or a pyserial URL"
    )
    baudrate: Annotated[int, Field(ge=1200, le=921600)] = Field(
        9600, description="Serial: baud rate (DFPlayer-compatible modules use 9600)"
    )
    track: Annotated[int, Field(ge=1, le=2999)] = Field(
        1, description="Serial: track number the module plays (siren sound or message)"
    )
    volume: Annotated[int, Field(ge=0, le=30)] = Field(
        25, description="Serial: module volume 0..30, sent before each play"
    )
    max_on_s: Annotated[PosSeconds, Field(le=MAX_ON_S)] = Field(
        120.0,
        description="Safety limit: the output is cut after this long on without a break, whatever asked for it",
    )
    max_duty: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5,
        description="Safety limit: largest share of duty_window_s the output may be on; past it the output is cut and refused",
    )
    duty_window_s: Annotated[PosSeconds, Field(le=DAY_S)] = Field(
        600.0, description="Safety limit: the sliding window over which max_duty is measured"
    )
    feedback_pin: Pin | None = Field(
        None,
        description="Optional input wired to sense the output (relay contact, current sensor); the self-test reads it back",
    )

    @field_validator("pin", "feedback_pin")
    @classmethod
    def _pin_exists(cls, pin: Pin | None) -> Pin | None:
        if pin is not None and parse_pin(pin) is None:
            raise ValueError(
                f"pin {pin!r} does not exist on the 40-pin header (use a BCM number 0-27, 'GPIOn' or 'BOARDn')"
            )
        return pin

    @model_validator(mode="after")
    def _kind_needs(self) -> DeterrentConfig:
        if self.kind in GPIO_KINDS and self.pin is None:
            raise ValueError(f"a {self.kind} output needs a pin")
        if self.kind == "voice" and not self.audio_file:
            raise ValueError("a voice output needs audio_file")
        if self.kind == "serial" and not self.port:
            raise ValueError("a serial output needs port")
        if self.on_s > self.max_on_s:
            raise ValueError(
                f"on_s ({self.on_s}) is longer than the safety limit max_on_s ({self.max_on_s})"
            )
        if self.on_s > self.max_duty * self.duty_window_s:
            raise ValueError(
                f"on_s ({self.on_s}) exceeds the duty budget max_duty*duty_window_s ({self.max_duty * self.duty_window_s:g})"
            )
        return self

    @property
    def audible(self) -> bool:
        return self.kind in AUDIBLE_KINDS

    @property
    def blinks(self) -> bool:
        return (self.pattern or ("blink" if self.kind == "strobe" else "steady")) == "blink"


class EscalationStage(Section):
    after_s: Annotated[NonNegSeconds, Field(le=DAY_S)] = Field(
        ...,
        description="Seconds after the situation started (the rule fired) when this stage fires",
    )
    outputs: list[str] = Field(
        default_factory=list, description="Deterrent outputs switched on at this stage"
    )
    on_s: Annotated[PosSeconds, Field(le=MAX_ON_S)] | None = Field(
        None, description="Override of the outputs' on_s for this stage"
    )
    alert: bool = Field(
        False, description="Also raise a hub alert (a deterrent event with severity alert)"
    )

    @model_validator(mode="after")
    def _does_something(self) -> EscalationStage:
        if not self.outputs and not self.alert:
            raise ValueError("a stage needs outputs or alert = true")
        return self


class EscalationPolicy(Section):
    stages: list[EscalationStage] = Field(
        ...,
        description="Stages in order (light, then voice, then siren and alert...)",
        min_length=1,
        max_length=8,
    )
    cooldown_s: Annotated[NonNegSeconds, Field(le=DAY_S)] = Field(
        120.0,
        description="After a situation of this rule ends, wait this long before a new one escalates again",
    )
    off_on_end: bool = Field(
        False, description="Switch this policy's outputs off as soon as the situation ends"
    )

    @field_validator("stages")
    @classmethod
    def _increasing(cls, stages: list[EscalationStage]) -> list[EscalationStage]:
        for i in range(1, len(stages)):
            if stages[i].after_s < stages[i - 1].after_s:
                raise ValueError(
                    f"stage {i} fires at {stages[i].after_s} s, before stage {i - 1} ({stages[i - 1].after_s} s)"
                )
        return stages


class DeterrenceConfig(Section):
    quiet_hours: list[TimeWindow] = Field(
        default_factory=list,
        description="Windows 'HH:MM-HH:MM' (site timezone; may cross midnight) when quiet_applies_to outputs stay off",
    )
    quiet_applies_to: Literal["audible", "all"] = Field(
        "audible", description="During quiet hours: silence only audible outputs, or all outputs"
    )
    mute_button: Pin | None = Field(
        None, description="Optional staff mute button input (to ground, internal pull-up)"
    )
    mute_minutes: Annotated[float, Field(gt=0, le=720)] = Field(
        15.0, description="How long the mute button (or a hub mute without a time) silences outputs"
    )
    escalation: dict[str, EscalationPolicy] = Field(
        default_factory=dict,
        description="Escalation policy per rule name ([deterrence.escalation.loitering]); overrides the rule's single deterrent",
    )

    @field_validator("mute_button")
    @classmethod
    def _button_pin(cls, pin: Pin | None) -> Pin | None:
        if pin is not None and parse_pin(pin) is None:
            raise ValueError(f"pin {pin!r} does not exist on the 40-pin header")
        return pin


def quiet_windows(windows: list[str]) -> list[tuple[int, int]]:
    """'HH:MM-HH:MM' strings -> (start, end) minutes of the day."""
    return [parse_window(w) for w in windows]


def in_windows(minute_of_day: int, windows: list[tuple[int, int]]) -> bool:
    """Whether a minute of the day falls in any window (windows may cross midnight)."""
    for a, b in windows:
        if (a <= minute_of_day < b) if a < b else (minute_of_day >= a or minute_of_day < b):
            return True
    return False


# Physical header pin -> BCM GPIO for the 40-pin header (Pi 2 and later).
BOARD_TO_BCM = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10,
    21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19,
    36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip
HEADER_GPIO = frozenset(BOARD_TO_BCM.values())  # the BCM GPIOs that reach the 40-pin header


def parse_pin(pin: Pin | None) -> int | None:
    """BCM number for a pin given as int, 'GPIOn', 'BCMn' or 'BOARDn'; None if no such pin."""
    if pin is None or isinstance(pin, bool):
        return None
    if isinstance(pin, int):
        return pin if pin in HEADER_GPIO else None
    m = re.fullmatch(r"(GPIO|BCM|BOARD)?(\d{1,2})", pin.strip().upper())
    if not m:
        return None
    n = int(m.group(2))
    if m.group(1) == "BOARD":
        return BOARD_TO_BCM.get(n)
    return n if n in HEADER_GPIO else None
