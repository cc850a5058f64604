"""Running under systemd: readiness and the frame-fed watchdog (no-op elsewhere)."""

from firmware.service.watchdog import Watchdog

__all__ = ["Watchdog"]
