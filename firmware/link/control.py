"""What hub commands need from the unit. The frame loop implements :class:`UnitControl`.

Every method runs on the link's command thread, one command at a time. A method refuses bad
arguments by raising ``ValueError`` (or ``KeyError`` for an unknown zone/deterrent/incident):
the hub gets an error reply with that message and nothing changes. Any other exception is
reported as ``failed``. Results are sent as they are, minus binary data (no command can make
the unit send images).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class UnitControl(Protocol):
    def arm(self, zone: str | None = None) -> None:
        """Arm the whole unit (``zone`` None) or one zone; unknown zone -> KeyError."""

    def disarm(self, zone: str | None = None) -> None:
        """Disarm the whole unit or one zone: the rules stop watching it (events stop)."""

    def apply_config(self, text: str) -> dict[str, Any]:
        """Apply a new site config (TOML text, already validated by the link with
        ``firmware.config.parse_text``) atomically: either all of it takes effect or, on any
        failure, the previous config is restored and an exception says why. Returns the
        reply's facts as docs/mqtt.md's ``config-set-result`` spells them: ``applied`` and
        ``restart_required`` (section names), ``saved`` (where the text was kept, or None)
        and an optional ``note``."""

    def config_text(self) -> str:
        """The site config text in effect now (for the retained config/state)."""

    def deterrent_test(self, name: str | None, seconds: float) -> dict[str, Any]:
        """Pulse one deterrent output (or all when ``name`` is None) for ``seconds``,
        ignoring mute and cooldown; unknown name -> KeyError."""

    def mute(self, minutes: float) -> dict[str, Any]:
        """Silence the deterrents for ``minutes`` (0 lifts the mute); events still flow.
        Returns at least ``{"until": unix_time}``."""

    def diagnostics(
        self, cmd: str = "status", args: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A `vigil-diag` command (status, selftest, bench, logs, zones, outputs, ...) for a
        field engineer: plain values only, never images (a snapshot is refused)."""

    def rebirth(self) -> dict[str, Any]:
        """The birth fields as they are now (firmware, models, config_hash, capabilities);
        the link re-publishes birth and status with them."""

    def retention_purge(self, older_than_days: float | None) -> dict[str, Any]:
        """Delete stored incidents past retention (or older than ``older_than_days``),
        never those under legal hold. Returns at least ``{"deleted": n}``."""

    def legal_hold(self, incident_id: str, hold: bool) -> dict[str, Any]:
        """Place (or lift) a legal hold on one stored incident so that retention keeps it;
        unknown incident -> KeyError."""
