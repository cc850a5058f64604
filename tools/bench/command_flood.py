"""Benchmark: a flood of unsigned commands against a unit's link, on a real Mosquitto.

    python -m tools.bench.command_flood [--rate 10000] [--seconds 20] [--json]

A separate process publishes ``--rate`` unsigned commands a second (QoS 0, as an attacker
on the broker would) to the unit's ``cmd/disarm`` for ``--seconds``. Meanwhile the hub sends
one signed command every half second and an event is published every half second; the
bench reports the signed commands' reply latency (target: max < 1 s), the events' delay, the
refusal replies and log lines the flood caused, the unit's RSS before and after, and the
most messages waiting in paho's outgoing queue. Everything is measured in one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import cbor2
import paho.mqtt.client as mqtt

from firmware.link import Link
from firmware.link.config import LinkConfig, parse_url
from firmware.link.signing import Signer

BIRTH = dict(firmware="bench", models=[], config_hash="", capabilities=[])
TOPIC = "vigil/s1/u1/cmd/disarm"
LATENCY_TARGET_S = 1.0


class Control:
    """The smallest unit control: arm/disarm flags (the frame loop implements the real one)."""

    def __init__(self) -> None:
        self.armed = True

    def arm(self, zone: str | None = None) -> None:
        self.armed = True

    def disarm(self, zone: str | None = None) -> None:
        self.armed = False

    def config_text(self) -> str:
        return '[site]\nsite_id = "s1"\nunit_id = "u1"\n'

    def rebirth(self) -> dict:
        return {}


def flood(url: str, rate: float, seconds: float, forged: bool = False) -> int:
    """Publish unsigned (or, with ``forged``, fresh and well-formed but wrongly signed)
    commands at ``rate`` a second for ``seconds``; returns how many."""
    _tls, host, port = parse_url(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"flood-{uuid.uuid4().hex[:6]}")
    c.max_queued_messages_set(0)
    c.connect(host, port, 30)
    c.loop_start()
    ctr = time.time_ns() // 1000 + 10**9  # fresh, above the hub's: reaches the signature check
    body = cbor2.dumps({"v": 1, "id": "flood", "ts": time.time(), "ctr": ctr, "args": {}})
    outer = {"v": 1, "body": body}  # no sig: refused as unsigned by the cheap checks
    if forged:
        outer["sig"] = bytes(64)
    payload = cbor2.dumps(outer)
    sent, start = 0, time.monotonic()
    while (now := time.monotonic() - start) < seconds:
        due = int(now * rate)
        while sent < due:
            c.publish(TOPIC, payload, qos=0)
            sent += 1
        time.sleep(0.002)
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()
    return sent


class Probe:
    """The hub's side: signed commands on a timer, their replies (and the refusals) counted."""

    def __init__(self, url: str, signer: Signer) -> None:
        _tls, host, port = parse_url(url)
        self.signer = signer
        self.sent: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self.refusals = 0
        self.events: dict[str, float] = {}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe")
        self.c.on_message = self._on_message
        self.c.connect(host, port, 30)
        self.c.subscribe([("vigil/s1/u1/reply", 1), ("vigil/s1/u1/events", 1)])
        self.c.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        t = time.monotonic()
        m = cbor2.loads(msg.payload)
        if msg.topic.endswith("/events"):
            self.events.setdefault(m.get("msg_id", ""), t)
            return
        rid = m.get("id")
        if rid in self.sent and m.get("ok"):
            self.latency.setdefault(rid, t - self.sent[rid])
        elif not m.get("ok"):
            self.refusals += 1

    def command(self) -> None:
        rid = uuid.uuid4().hex[:12]
        payload = self.signer.sign(TOPIC, rid, {})
        self.sent[rid] = time.monotonic()
        self.c.publish(TOPIC, payload, qos=1)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


class _CountHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.n += 1


def baseline(url: str, rate: float, seconds: float) -> float:
    """Messages a second a bare paho subscriber (no-op on_message) takes from the same flood:
    the most any Python MQTT client on this machine could answer for."""
    _tls, host, port = parse_url(url)
    got = [0]
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="baseline")
    c.on_message = lambda *a: got.__setitem__(0, got[0] + 1)
    c.connect(host, port, 30)
    c.subscribe(TOPIC, 1)
    c.loop_start()
    time.sleep(0.5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.bench.command_flood", "--flood-only", url]
        + ["--rate", str(rate), "--seconds", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(seconds)
    n = got[0]
    proc.communicate(timeout=seconds + 30)
    c.disconnect()
    c.loop_stop()
    return n / seconds


def run(
    url: str, work: Path, rate: float, seconds: float, forged: bool = False, **link_cfg: Any
) -> dict[str, Any]:
    """One flood against a fresh unit link; returns the figures (see the module doc)."""
    from firmware.events.records import Event, Severity

    signer = Signer.generate(work / "hub.pem", work / "hub.pub.pem")
    cfg = LinkConfig(mqtt=url, hub_public_key=str(work / "hub.pub.pem"), **link_cfg)
    link = Link(cfg, site="s1", unit="u1", data_dir=work / "unit", birth=BIRTH, control=Control())
    counter = _CountHandler()
    logging.getLogger("vigil.link").addHandler(counter)
    logging.getLogger("vigil.link").setLevel(logging.INFO)  # as `vigil run` logs
    link.start()
    probe = Probe(url, signer)
    deadline = time.monotonic() + 10
    while not link.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    rss0 = rss_mb()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.bench.command_flood", "--flood-only", url]
        + ["--rate", str(rate), "--seconds", str(seconds)]
        + ["--forged"] * forged,
        stdout=subprocess.PIPE,
        text=True,
    )
    out_max, q_max, ev_sent = 0, 0, {}
    t_end = time.monotonic() + seconds + 1.0
    next_probe = time.monotonic() + 0.5
    while time.monotonic() < t_end:
        if time.monotonic() >= next_probe:
            next_probe += 0.5
            probe.command()
            ev = Event.instant(
                time.time(), len(ev_sent), type="health", rule="bench", severity=Severity.INFO
            )
            link.publish_event(ev)
            ev_sent[ev.msg_id] = time.monotonic()
        conn = link._conn
        if conn is not None:
            out_max = max(out_max, len(conn.client._out_messages))
        q_max = max(q_max, link._cmd_queue.qsize())
        time.sleep(0.01)
    flooded = int(proc.communicate(timeout=seconds + 30)[0].strip() or 0)
    time.sleep(1.5)  # the last replies and events
    rss1 = rss_mb()
    stats = link.metrics_snapshot()["commands"]
    probe.close()
    link.stop()
    logging.getLogger("vigil.link").removeHandler(counter)
    lat = sorted(probe.latency.values())
    ev_delay = sorted(probe.events[m] - t for m, t in ev_sent.items() if m in probe.events)
    return {
        "rate": rate,
        "seconds": seconds,
        "kind": "forged" if forged else "unsigned",
        "flood_sent": flooded,
        "unit_took_per_s": round(
            sum(v for k, v in stats.items() if k != "replies_suppressed") / seconds
        ),
        "signed_sent": len(probe.sent),
        "signed_answered": len(lat),
        "latency_p50_s": lat[len(lat) // 2] if lat else None,
        "latency_max_s": lat[-1] if lat else None,
        "events_sent": len(ev_sent),
        "events_received": len(ev_delay),
        "event_delay_max_s": ev_delay[-1] if ev_delay else None,
        "refusal_replies": probe.refusals,
        "log_lines": counter.n,
        "paho_out_queue_max": out_max,
        "command_queue_max": q_max,
        "rss_before_mb": round(rss0, 1),
        "rss_after_mb": round(rss1, 1),
        "commands": stats,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=10000.0, help="unsigned commands a second")
    ap.add_argument("--seconds", type=float, default=20.0, help="flood length")
    ap.add_argument(
        "--forged", action="store_true", help="well-formed, fresh, wrongly signed commands"
    )
    ap.add_argument("--baseline", action="store_true", help="also a bare paho subscriber's intake")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--flood-only", metavar="URL", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.flood_only:
        print(flood(a.flood_only, a.rate, a.seconds, a.forged))
        return 0
    from tools.bench.link import Broker

    broker = Broker()
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-flood-") as d:
            url = f"mqtt://127.0.0.1:{broker.port}"
            r = run(url, Path(d), a.rate, a.seconds, a.forged)
            if a.baseline:
                r["bare_paho_took_per_s"] = round(baseline(url, a.rate, a.seconds))
    finally:
        broker.close()
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        for k, v in r.items():
            print(f"{k:22s} {v}")
        ok = r["latency_max_s"] is not None and r["signed_answered"] == r["signed_sent"]
        ok = ok and r["latency_max_s"] < LATENCY_TARGET_S
        print(f"target: every signed command answered within {LATENCY_TARGET_S:g} s: {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
