"""A real Mosquitto broker on a free loopback port, for tests (no fake broker)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MosquittoBroker:
    """Starts ``mosquitto -c conf`` on 127.0.0.1:port; ``stop()``/``start()`` simulate outages.

    ``extra_conf`` is appended to the listener config (for TLS: cafile/certfile/keyfile,
    require_certificate ...). The same port is reused across restarts.
    """

    def __init__(self, port: int | None = None, extra_conf: str = "", persistence: bool = False):
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="vigil-mosquitto-"))
        self.conf = self.dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true" if "require_certificate" not in extra_conf else "",
            # Started as root (CI), mosquitto would switch to the `mosquitto` user and then fail
            # to read our temp files (ACL, certificates, log, persistence): stay as we are.
            "user root" if os.geteuid() == 0 else "",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.dir}/",
            f"log_dest file {self.dir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            extra_conf,
        ]
        self.conf.write_text("\n".join(x for x in lines if x) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = (
                    (self.dir / "mosquitto.log").read_text(errors="replace")
                    if (self.dir / "mosquitto.log").exists()
                    else ""
                )
                raise RuntimeError(f"mosquitto exited: {err} {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
