"""`vigil-diag --mqtt`: diagnostics through the hub link, as signed `diagnostics` commands.

The request travels as ``cmd/diagnostics`` with args ``{"cmd": ..., "args": ...}``, signed
with the hub's key like any hub command (tools/hub). Images never leave a unit over the
network: `snapshot` is refused here and works over the serial console only.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlparse

from tools.diag.transport import Bytes, CommandFailed, Progress, Unreachable

NETWORK_REFUSED = {"snapshot": "snapshots (images) are only served over the serial console"}


def hub_command(cmd: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The hub command (docs/mqtt.md) that carries a vigil-diag command."""
    if cmd == "status":
        return "diagnostics", {}
    if cmd == "test_output":
        return "deterrent_test", {"name": args["name"], "seconds": float(args.get("seconds", 1.0))}
    if cmd == "mute":
        return "mute", {"minutes": args["minutes"]}
    return "diagnostics", {"cmd": cmd, "args": args}


def _broker(url: str) -> tuple[str, int, bool]:
    u = urlparse(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise Unreachable(
            f"{url!r} is not mqtt://HOST:PORT or mqtts://HOST:PORT",
            "for example mqtt://hub.local:1883",
        )
    try:
        port = u.port or (8883 if u.scheme == "mqtts" else 1883)
    except ValueError:
        raise Unreachable(f"{url!r} has a bad port", "ports are 1..65535") from None
    return u.hostname, port, u.scheme == "mqtts"


class MqttTransport:
    name = "mqtt"

    def __init__(
        self,
        url: str,
        *,
        site: str | None,
        unit: str | None,
        key: str | None,
        timeout: float = 10.0,
        prefix: str = "vigil",
    ) -> None:
        host, port, _tls = _broker(url)
        try:
            socket.create_connection((host, port), timeout=min(timeout, 5.0)).close()
        except OSError as e:
            raise Unreachable(
                f"cannot reach the broker at {host}:{port}: {e.strerror or e}",
                "check the address, the network and that the broker runs; or use --serial DEV at the unit",
            ) from None
        if not (site and unit and key):
            raise Unreachable(
                "--mqtt needs --site, --unit and --key (the hub's signing key)",
                "vigil-diag --mqtt URL --site S --unit U --key hub-key.pem status",
            )
        try:
            from firmware.link.signing import Signer
            from tools.hub.client import HubClient
        except ImportError as e:
            raise Unreachable(
                f"the MQTT transport needs the hub link (firmware.link, tools.hub), not in this build ({e.name})",
                "use --serial DEV for now",
            ) from None
        try:
            signer = Signer.load(key)
        except (OSError, ValueError) as e:
            raise Unreachable(
                f"cannot load the hub key {key}: {e}", "vigil-hub keygen makes one"
            ) from None
        self.unit = unit
        self.hub = HubClient(url, site=site, prefix=prefix, signer=signer, validate=False)
        try:
            self.hub.connect(timeout)
        except (OSError, TimeoutError) as e:
            raise Unreachable(
                f"MQTT connection to {host}:{port} failed: {e}", "check broker credentials/ACL"
            ) from None

    def request(
        self,
        cmd: str,
        args: dict[str, Any],
        progress: Progress | None = None,
        on_bytes: Bytes | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        if cmd in NETWORK_REFUSED:
            raise CommandFailed(
                f"{cmd} over MQTT: {NETWORK_REFUSED[cmd]}",
                "vigil-diag --serial /dev/ttyUSB0 snapshot",
            )
        name, cmd_args = hub_command(cmd, args)
        if progress is not None:
            progress(0, 1, f"{cmd} (waiting for the unit)")
        try:
            reply = self.hub.command(self.unit, name, cmd_args, timeout=timeout)
        except TimeoutError:
            raise Unreachable(
                f"no reply from unit {self.unit} within {timeout:.0f} s",
                "is the unit online (vigil-hub watch)? is its hub_public_key the pair of --key?",
            ) from None
        if not isinstance(reply, dict):
            raise Unreachable(f"unexpected reply {reply!r}")
        if reply.get("ok"):
            result = reply.get("result")
            return result if isinstance(result, dict) else {"result": result}
        err = reply.get("error") or {}
        if not isinstance(err, dict):
            raise CommandFailed(str(err))
        code, message = err.get("code", "error"), err.get("message", "")
        if code == "bad_args" and name == "diagnostics" and "unknown argument" in message:
            raise CommandFailed(
                f"{cmd} over MQTT: this unit's link takes no diagnostics sub-commands ({message})",
                "use --serial DEV at the unit, or update its firmware",
            )
        hints = {
            "bad_signature": "--key is not the key whose public half the unit has (link.hub_public_key)",
            "no_key": "the unit has no hub public key configured (link.hub_public_key)",
            "stale": "the hub's clock and the unit's differ: check NTP on both",
            "rejected": "see the message; `vigil-diag ... outputs` lists the outputs",
        }
        raise CommandFailed(f"{code}: {message}", hints.get(code, ""))

    def close(self) -> None:
        self.hub.close()
