"""Topics and message payloads of the hub contract (docs/mqtt.md specifies them in CDDL)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import cbor2

CONTRACT_VERSION = 1

STATUS_STATES = ("online", "offline", "stopped", "alert")
# Reason codes the unit uses with status "alert"; others may follow (hubs show unknown ones as is).
ALERT_REASONS = (
    "no_frames",
    "camera_reopened",
    "model_failed",
    "tpu_missing",
    "disk_full",
    "outbox_full",
    "outbox_failed",
    "overheating",
)


@dataclass(frozen=True, slots=True)
class Topics:
    """``<prefix>/<site>/<unit>/...``: every topic of one unit."""

    prefix: str
    site: str
    unit: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.unit}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def birth(self) -> str:
        return f"{self.base}/birth"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def metrics(self) -> str:
        return f"{self.base}/metrics"

    @property
    def reply(self) -> str:
        return f"{self.base}/reply"

    @property
    def config_set(self) -> str:
        return f"{self.base}/config/set"

    @property
    def config_state(self) -> str:
        return f"{self.base}/config/state"

    def cmd(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    @property
    def cmd_filter(self) -> str:
        return f"{self.base}/cmd/+"


def encode(msg: dict[str, Any]) -> bytes:
    """Every message is a CBOR map whose first key is the contract version ``v``."""
    return cbor2.dumps({"v": CONTRACT_VERSION, **msg})


def status(state: str, session: int, reasons: list[str] | None = None) -> bytes:
    if state not in STATUS_STATES:
        raise ValueError(f"unknown status {state!r}")
    msg: dict[str, Any] = {"state": state, "session": session, "time": time.time()}
    if reasons:
        msg["reasons"] = [str(r) for r in reasons]
    return encode(msg)


def birth(session: int, fields: dict[str, Any], commands: list[str]) -> bytes:
    msg = {
        "session": session,
        "time": time.time(),
        "firmware": str(fields.get("firmware", "unknown")),
        "models": [
            {"name": str(m.get("name", "")), "sha256": str(m.get("sha256", ""))}
            for m in fields.get("models", [])
        ],
        "config_hash": str(fields.get("config_hash", "")),
        "capabilities": [str(c) for c in fields.get("capabilities", [])],
        "commands": commands,
    }
    return encode(msg)


def plain(value: Any, depth: int = 0) -> Any:
    """Results from the unit made safe to send: plain CBOR types only, and never bytes (no
    command may make the unit send images or other binary data)."""
    if depth > 16:
        return "<too deep>"
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes withheld>"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if getattr(value, "ndim", 1) == 0:
            return plain(value.item(), depth + 1)
        return f"<array {tuple(value.shape)} withheld>"
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v, depth + 1) for v in value]
    if hasattr(value, "item"):
        return plain(value.item(), depth + 1)
    return str(value)
