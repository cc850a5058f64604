"""Self-test of one output: pulse it and read it back (feedback input or the output level)."""

from __future__ import annotations

import time
from typing import Any

from firmware.deter.config import DeterrentConfig
from firmware.deter.state import _OutputState


def pulse_and_read(name: str, st: _OutputState, pulse_s: float = 0.2) -> dict[str, Any]:
    """{ok, detail, hint} for one output (the controller holds its lock and records the
    pulse); an output a rule is using right now is left alone."""
    if st.out is None:
        return {
            "ok": False,
            "detail": f"unavailable: {st.error}",
            "hint": _unavailable_hint(st.cfg),
        }
    if st.on_since is not None:
        return {"ok": True, "detail": "in use by a rule right now; not pulsed", "hint": ""}
    try:
        try:
            st.out.on()
            time.sleep(pulse_s)
            seen_on = st.out.read_back()
        finally:
            st.out.off()
        time.sleep(0.05)
        seen_off = st.out.read_back()
    except Exception as e:
        return {
            "ok": False,
            "detail": f"switching failed: {e}",
            "hint": _unavailable_hint(st.cfg),
        }
    if seen_on is None:
        return {"ok": True, "detail": "pulsed; no read-back for this output", "hint": ""}
    if seen_on and not seen_off:
        how = "feedback input" if st.cfg.feedback_pin is not None else "output level"
        return {"ok": True, "detail": f"on/off read back by its {how}", "hint": ""}
    stuck = "on" if seen_off else "off"
    return {
        "ok": False,
        "detail": f"read back {'on' if seen_on else 'off'} when on, {'on' if seen_off else 'off'} when off: stuck {stuck}",
        "hint": f"check the wiring of {name} (pin {st.cfg.pin}, feedback {st.cfg.feedback_pin}), the relay/driver and its supply",
    }


def _unavailable_hint(cfg: DeterrentConfig) -> str:
    if cfg.kind == "serial":
        return f"is the siren/audio module plugged in at {cfg.port}? (ls /dev/ttyUSB* /dev/ttyACM*)"
    if cfg.kind == "voice":
        return "is alsa-utils installed (aplay) and the audio file present?"
    return f"is GPIO{cfg.pin} free (not used by another program or overlay)?"
