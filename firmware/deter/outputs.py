"""Deterrent outputs behind one small interface: GPIO (gpiozero), ALSA voice, serial module.

Each output only knows how to switch itself on and off and to read itself back; timing,
cooldowns, escalation and safety limits live in the controller so every kind obeys them.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Protocol

from firmware.config.base import resolve_path
from firmware.deter.config import DeterrentConfig, parse_pin

log = logging.getLogger(__name__)


class Output(Protocol):
    name: str
    cfg: DeterrentConfig

    def on(self) -> None: ...
    def off(self) -> None: ...
    def is_on(self) -> bool: ...
    def read_back(self) -> bool | None:
        """What the hardware says (feedback input or the output level); None if unknown."""
        ...

    def close(self) -> None: ...


class _Enable:
    """Optional GPIO that powers an amplifier or module while a non-GPIO output plays."""

    def __init__(self, cfg: DeterrentConfig, pin_factory) -> None:
        self.dev = None
        if cfg.pin is not None:
            from gpiozero import OutputDevice

            self.dev = OutputDevice(
                f"GPIO{parse_pin(cfg.pin)}",
                active_high=cfg.active_high,
                initial_value=False,
                pin_factory=pin_factory,
            )

    def set(self, on: bool) -> None:
        if self.dev is not None:
            self.dev.value = on

    def close(self) -> None:
        if self.dev is not None:
            self.dev.close()


def _feedback(cfg: DeterrentConfig, pin_factory):
    if cfg.feedback_pin is None:
        return None
    from gpiozero import DigitalInputDevice

    return DigitalInputDevice(f"GPIO{parse_pin(cfg.feedback_pin)}", pin_factory=pin_factory)


class GpioOutput:
    """light/strobe (LED or dimmed PWMLED, blinking for a strobe), relay (DigitalOutputDevice), buzzer (Buzzer/TonalBuzzer)."""

    def __init__(self, name: str, cfg: DeterrentConfig, pin_factory=None) -> None:
        import gpiozero

        self.name, self.cfg = name, cfg
        pin = f"GPIO{parse_pin(cfg.pin)}"
        kw = dict(pin_factory=pin_factory)
        if cfg.kind == "buzzer" and cfg.tone_hz is not None:
            self.dev = gpiozero.TonalBuzzer(pin, **kw)
        elif cfg.kind == "buzzer":
            self.dev = gpiozero.Buzzer(pin, active_high=cfg.active_high, **kw)
        elif cfg.kind == "relay":  # DigitalOutputDevice: an OutputDevice that can also blink
            self.dev = gpiozero.DigitalOutputDevice(
                pin, active_high=cfg.active_high, initial_value=False, **kw
            )
        elif cfg.brightness < 1.0:  # dimmed lamp: PWM
            self.dev = gpiozero.PWMLED(pin, active_high=cfg.active_high, **kw)
        else:
            self.dev = gpiozero.LED(pin, active_high=cfg.active_high, **kw)
        try:
            self.feedback = _feedback(cfg, pin_factory)
        except Exception:
            self.dev.close()
            raise
        self._on = False

    def on(self) -> None:
        self._on = True
        if self.cfg.kind == "buzzer" and self.cfg.tone_hz is not None:
            from gpiozero.tones import Tone

            self.dev.play(Tone(frequency=self.cfg.tone_hz))
        elif self.cfg.blinks and hasattr(self.dev, "blink"):
            self.dev.blink(on_time=self.cfg.blink_on_s, off_time=self.cfg.blink_off_s)
        elif self.cfg.brightness < 1.0 and self.cfg.kind in ("light", "strobe"):
            self.dev.value = self.cfg.brightness
        else:
            self.dev.on()

    def off(self) -> None:
        self._on = False
        if self.cfg.kind == "buzzer" and self.cfg.tone_hz is not None:
            self.dev.stop()
        else:
            self.dev.off()

    def is_on(self) -> bool:
        return self._on

    def read_back(self) -> bool | None:
        if self.feedback is not None:
            return bool(self.feedback.value)
        if self.cfg.blinks:
            return None  # the level alternates; only a feedback input can tell
        return bool(self.dev.value)  # PWMLED: any brightness above 0 reads as on

    def close(self) -> None:
        for d in (self.dev, self.feedback):
            if d is not None:
                d.close()


class VoiceOutput:
    """A recorded message played through ALSA (aplay by default) while the output is on."""

    def __init__(self, name: str, cfg: DeterrentConfig, pin_factory=None, base: Path | None = None):
        self.name, self.cfg = name, cfg
        self.file = resolve_path(cfg.audio_file or "", base)
        self.enable = _Enable(cfg, pin_factory)
        self.proc: subprocess.Popen | None = None

    def on(self) -> None:
        self.off()
        self.enable.set(True)
        cmd = [
            a.replace("{device}", self.cfg.alsa_device).replace("{file}", str(self.file))
            for a in self.cfg.player
        ]
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as e:
            self.enable.set(False)
            raise OSError(f"voice output {self.name}: cannot start {cmd[0]!r}: {e}") from e

    def off(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None
        self.enable.set(False)

    def is_on(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def read_back(self) -> bool | None:
        return self.is_on()

    def close(self) -> None:
        self.off()
        self.enable.close()


# DFPlayer-compatible serial audio/siren modules: 10-byte frames
#   7E FF 06 CMD FB P_hi P_lo C_hi C_lo EF, checksum = -(FF+06+CMD+FB+P_hi+P_lo) & 0xFFFF
CMD_PLAY_TRACK = 0x03
CMD_VOLUME = 0x06
CMD_LOOP_TRACK = 0x08
CMD_STOP = 0x16


def dfplayer_frame(cmd: int, param: int = 0, feedback: bool = False) -> bytes:
    """One command frame of the DFPlayer-style protocol documented in docs/deterrents.md."""
    body = bytes([0xFF, 0x06, cmd & 0xFF, 1 if feedback else 0, (param >> 8) & 0xFF, param & 0xFF])
    chk = (-sum(body)) & 0xFFFF
    return bytes([0x7E, *body, chk >> 8, chk & 0xFF, 0xEF])


def parse_dfplayer_frame(frame: bytes) -> tuple[int, int]:
    """(cmd, param) of a frame; ValueError on a bad start/end byte or checksum."""
    if len(frame) != 10 or frame[0] != 0x7E or frame[9] != 0xEF:
        raise ValueError(f"not a DFPlayer frame: {frame.hex()}")
    body = frame[1:7]
    if ((-sum(body)) & 0xFFFF) != (frame[7] << 8 | frame[8]):
        raise ValueError(f"bad checksum: {frame.hex()}")
    return body[2], body[4] << 8 | body[5]


class SerialOutput:
    """A siren or audio module on a serial port: volume + loop the track while on, stop when off."""

    def __init__(self, name: str, cfg: DeterrentConfig, pin_factory=None) -> None:
        import serial

        self.name, self.cfg = name, cfg
        try:
            self.port = serial.serial_for_url(cfg.port, baudrate=cfg.baudrate, timeout=0.2)
        except (serial.SerialException, ValueError) as e:
            raise OSError(f"serial output {name}: cannot open {cfg.port}: {e}") from e
        self.enable = _Enable(cfg, pin_factory)
        self._on = False

    def on(self) -> None:
        self.enable.set(True)
        self.port.write(dfplayer_frame(CMD_VOLUME, self.cfg.volume))
        self.port.write(dfplayer_frame(CMD_LOOP_TRACK, self.cfg.track))
        self.port.flush()
        self._on = True

    def off(self) -> None:
        self._on = False
        try:
            self.port.write(dfplayer_frame(CMD_STOP))
            self.port.flush()
        finally:
            self.enable.set(False)

    def is_on(self) -> bool:
        return self._on

    def read_back(self) -> bool | None:
        return None

    def close(self) -> None:
        try:
            if self._on:
                self.off()
        finally:
            self.port.close()
            self.enable.close()


def build_output(
    name: str, cfg: DeterrentConfig, pin_factory=None, base: Path | None = None
) -> Output:
    if cfg.kind == "voice":
        return VoiceOutput(name, cfg, pin_factory, base)
    if cfg.kind == "serial":
        return SerialOutput(name, cfg, pin_factory)
    return GpioOutput(name, cfg, pin_factory)
