"""Running under systemd: readiness and the frame-fed watchdog (no-op elsewhere)."""

from firmware.service.coredump import no_core_dumps
from firmware.service.watchdog import Watchdog

__all__ = ["Watchdog", "no_core_dumps"]
