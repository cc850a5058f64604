"""Shared fixtures: a real Mosquitto broker, the evaluation data folder, gpiozero mock pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.paths import eval_data_dir
from tests.support.broker import MOSQUITTO, MosquittoBroker


@pytest.fixture
def broker():
    """A fresh Mosquitto on a free loopback port (plain TCP, anonymous)."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto not installed (bash tools/setup.sh installs it)")
    with MosquittoBroker() as b:
        yield b


@pytest.fixture(scope="session")
def eval_data() -> Path:
    """../shared/data (or $VIGIL_EVAL_DATA); tests that need it skip when it is absent."""
    d = eval_data_dir()
    if not d.is_dir():
        pytest.skip(f"evaluation data not found at {d} (set VIGIL_EVAL_DATA)")
    return d


@pytest.fixture
def mock_pins():
    """gpiozero's MockFactory as the default pin factory, reset after the test."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = old


@pytest.fixture
def pins():
    """A gpiozero MockFactory of its own, for code that is handed its pin factory
    (``pin_factory=``, as the unit does): no process-wide default is touched."""
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    try:
        yield factory
    finally:
        factory.reset()
        factory.close()
