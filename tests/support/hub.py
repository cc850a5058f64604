"""`vigil-hub serve` as a real process for tests (real broker, real SQLite file), and a
logged-in API client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.broker import free_port

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def add_user(db: Path, name: str, role: str, tmp: Path, password: str = PASSWORD) -> None:
    pw = tmp / f"{name}.pw"
    pw.write_text(password + "\n")
    r = run_hub(["user", "add", name, "--role", role, "--password-file", str(pw), "--db", str(db)])
    assert r.returncode == 0, r.stderr


def run_hub(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tools.hub.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


class HubProcess:
    """``vigil-hub serve`` on a free loopback port; ``kill()`` is a crash, ``stop()`` clean."""

    def __init__(self, mqtt: str, db: Path, *extra: str, site: str = "demo-store", port: int = 0):
        self.port = port or free_port()
        self.db, self.log = db, db.with_suffix(".log")
        self.args = ["serve", "--mqtt", mqtt, "--site", site, "--db", str(db),
                     "--listen", f"127.0.0.1:{self.port}", *extra]  # fmt: skip
        self.proc: subprocess.Popen | None = None
        self.scheme = "https" if "--tls-cert" in extra else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> HubProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        log = self.log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.hub.cli", *self.args], stdout=log, stderr=log, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"vigil-hub serve exited {self.proc.returncode}: {self.output()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"vigil-hub serve did not listen within {timeout} s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def login(url: str, user: str, password: str = PASSWORD, **kw) -> tuple[httpx.Client, str]:
    """A client holding the session cookie, and the CSRF token."""
    c = httpx.Client(base_url=url, timeout=20, **kw)
    r = c.post("/api/login", json={"user": user, "password": password})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf"]


def wait(pred, timeout: float = 30, every: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(every)


def sse_events(client: httpx.Client, path: str = "/api/stream", headers=None):
    """Yields (event, data, id) from the live stream."""
    with client.stream("GET", path, headers=headers or {}, timeout=None) as r:
        assert r.status_code == 200, r.read()
        kind, data, id_ = None, [], None
        for line in r.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line.startswith("id:"):
                id_ = int(line[3:].strip())
            elif line == "" and kind:
                yield kind, json.loads("\n".join(data)), id_
                kind, data, id_ = None, [], None
