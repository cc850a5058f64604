"""The gpiozero pin factory, resolved once per process and passed to every device.

gpiozero picks a default factory lazily and stores it process-wide; the unit instead picks
one here, through the factories' public classes, and hands it to each device as
``pin_factory=`` so tests, the standalone console and the unit never share hidden state.
"""

from __future__ import annotations

import importlib
import logging
import os

from gpiozero.pins import Factory

log = logging.getLogger(__name__)

# GPIOZERO_PIN_FACTORY names -> (module, class), in gpiozero's own order of preference.
FACTORIES: dict[str, tuple[str, str]] = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
    "mock": ("gpiozero.pins.mock", "MockFactory"),
}


def _make(name: str) -> Factory:
    module, cls = FACTORIES[name]
    return getattr(importlib.import_module(module), cls)()


def resolve_pin_factory(name: str | None = None) -> Factory:
    """The board's pin factory: ``name`` (or $GPIOZERO_PIN_FACTORY) when given, else the
    first of lgpio, RPi.GPIO, pigpio, native that works here; gpiozero's mock pins (logged)
    on a machine without GPIO."""
    name = name or os.environ.get("GPIOZERO_PIN_FACTORY") or None
    if name is not None:
        key = name.lower()
        if key not in FACTORIES:
            raise ValueError(
                f"GPIOZERO_PIN_FACTORY={name!r}: unknown pin factory (known: {', '.join(FACTORIES)})"
            )
        return _make(key)
    problems = []
    for key in ("lgpio", "rpigpio", "pigpio", "native"):
        try:
            return _make(key)
        except Exception as e:  # noqa: BLE001 - ImportError, BadPinFactory, PinUnknownPi, OSError...
            problems.append(f"{key}: {e}")
    log.warning("no GPIO on this machine: deterrent outputs are simulated (gpiozero mock pins)")
    log.debug("pin factories tried: %s", "; ".join(problems))
    return _make("mock")
