"""Benchmark of the hub link on loopback: event latency and outbox drain rate.

    python -m tools.bench.link [--events 500] [--rate 50] [--backlog 10000] [--json]

1. Latency: events stamped with the frame's wall-clock time go through ``Link.publish_event``
   (outbox write, fsync per the config) -> Mosquitto -> a subscriber, which notes when each
   arrives. Reports p50/p99/max in ms. Target: p99 < 50 ms.
2. Drain: a backlog of N events is queued while no broker is reachable; then the link
   connects and the time until the subscriber has all of them (and the outbox is empty) gives
   the drain rate. Target: > 2,000 events/s.

Starts its own Mosquitto on a free loopback port (or use --mqtt URL). Both figures are
measured in one run on this machine; compare runs, not machines.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cbor2
import numpy as np
import paho.mqtt.client as mqtt

from firmware.events.records import Event, EventPhase, Severity
from firmware.link import Link
from firmware.link.config import LinkConfig, parse_url

BIRTH = dict(firmware="bench", models=[], config_hash="", capabilities=[])
P99_TARGET_MS = 50.0
DRAIN_TARGET = 2000.0


class Broker:
    """mosquitto -c <temp conf> on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise SystemExit("mosquitto is not installed (bash tools/setup.sh installs it)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = Path(tempfile.mkdtemp(prefix="vigil-bench-broker-"))
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\nmax_inflight_messages 0\nuser root\n"
        )
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Subscriber:
    """Receives events and notes (receipt wall-clock time, decoded event)."""

    def __init__(self, url: str, topic: str):
        _tls, host, port = parse_url(url)
        self.got: list[tuple[float, dict]] = []
        self.ids: set[str] = set()
        self.cond = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="vigil-bench-sub")
        self.c.on_message = self._on_message
        ready = threading.Event()
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.connect(host, port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()
        if not ready.wait(10):
            raise SystemExit("no SUBACK from the broker")

    def _on_message(self, _c, _u, msg) -> None:
        now = time.time()
        ev = cbor2.loads(msg.payload)
        with self.cond:
            if ev["msg_id"] not in self.ids:
                self.ids.add(ev["msg_id"])
                self.got.append((now, ev))
            self.cond.notify_all()

    def wait_count(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.got) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _event(i: int, t: float) -> Event:
    return Event(
        type="loitering",
        rule="loitering",
        phase=EventPhase.UPDATE,
        severity=Severity.WARN,
        start_time=t,
        start_frame=i,
        time=t,
        frame=i,
        zone="till",
        track_ids=[3, 7],
        explain={"dwell_s": 31.5, "threshold_s": 30.0},
    )


def _link(url: str, data_dir: Path, sync: str) -> Link:
    cfg = LinkConfig(mqtt=url, outbox_sync=sync, reconnect_min_s=0.1, reconnect_max_s=0.5)
    return Link(cfg, site="bench", unit="u1", data_dir=data_dir, birth=BIRTH)


def bench_latency(url: str, n: int, rate: float, sync: str) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="vigil-bench-lat-"))
    sub = Subscriber(url, "vigil/bench/u1/events")
    link = _link(url, data_dir, sync)
    link.start()
    try:
        deadline = time.monotonic() + 10
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        put_ms = []
        period = 1.0 / rate
        next_t = time.monotonic()
        for i in range(n):
            frame_ts = time.time()  # the frame's timestamp; the rule fires on this frame
            t0 = time.perf_counter()
            link.publish_event(_event(i, frame_ts))
            put_ms.append((time.perf_counter() - t0) * 1000)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
        complete = sub.wait_count(n, 30)
        lat = np.array([(recv - ev["time"]) * 1000 for recv, ev in sub.got])
    finally:
        link.stop()
        sub.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "events": n,
        "received": int(lat.size),
        "complete": complete,
        "rate_hz": rate,
        "outbox_sync": sync,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
        "publish_event_p50_ms": round(float(np.percentile(put_ms, 50)), 2),
        "publish_event_p99_ms": round(float(np.percentile(put_ms, 99)), 2),
    }


def bench_drain(broker_url: str, n: int, sync: str) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="vigil-bench-drain-"))
    # Queue the backlog while no broker is reachable (port 1 on loopback refuses).
    offline = _link("mqtt://127.0.0.1:1", data_dir, "interval")
    t0 = time.perf_counter()
    for i in range(n):
        offline.publish_event(_event(i, time.time()))
    queue_s = time.perf_counter() - t0
    offline.stop()
    sub = Subscriber(broker_url, "vigil/bench/u1/events")
    link = _link(broker_url, data_dir, sync)
    try:
        t0 = time.perf_counter()
        link.start()
        complete = sub.wait_count(n, 120)
        received_s = time.perf_counter() - t0
        while link.outbox.depth() and time.perf_counter() - t0 < 120:
            time.sleep(0.01)
        emptied_s = time.perf_counter() - t0
        in_order = [ev["seq"] for _t, ev in sub.got] == sorted(ev["seq"] for _t, ev in sub.got)
    finally:
        link.stop()
        sub.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "backlog": n,
        "received": len(sub.got),
        "complete": complete,
        "in_order": in_order,
        "outbox_sync": sync,
        "queue_events_per_s": round(n / queue_s),
        "drain_s": round(received_s, 3),
        "drain_events_per_s": round(n / received_s),
        "outbox_empty_s": round(emptied_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.bench.link", description=__doc__.split("\n")[0]
    )
    p.add_argument("--mqtt", help="use this broker instead of starting one (mqtt://HOST:PORT)")
    p.add_argument("--events", type=int, default=500, help="events for the latency run")
    p.add_argument("--rate", type=float, default=50.0, help="events per second, latency run")
    p.add_argument("--backlog", type=int, default=10_000, help="events in the drain run")
    p.add_argument(
        "--sync", choices=["interval", "full"], default="interval", help="[link] outbox_sync"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    broker = None if args.mqtt else Broker()
    url = args.mqtt or broker.url
    try:
        lat = bench_latency(url, args.events, args.rate, args.sync)
        drain = bench_drain(url, args.backlog, args.sync)
    finally:
        if broker is not None:
            broker.close()
    ok = (
        lat["complete"]
        and drain["complete"]
        and drain["in_order"]
        and lat["p99_ms"] < P99_TARGET_MS
        and drain["drain_events_per_s"] > DRAIN_TARGET
    )
    if args.json:
        print(json.dumps({"latency": lat, "drain": drain, "targets_met": bool(ok)}))
    else:
        print(
            f"latency  {lat['received']}/{lat['events']} events at {lat['rate_hz']:g}/s "
            f"(outbox_sync={lat['outbox_sync']}): p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
            f"max {lat['max_ms']} ms  [target p99 < {P99_TARGET_MS:g} ms]"
        )
        print(
            f"         publish_event() itself: p50 {lat['publish_event_p50_ms']} ms, "
            f"p99 {lat['publish_event_p99_ms']} ms"
        )
        print(
            f"drain    {drain['received']}/{drain['backlog']} backlog events in "
            f"{drain['drain_s']} s = {drain['drain_events_per_s']} events/s, in order: "
            f"{drain['in_order']}; outbox empty after {drain['outbox_empty_s']} s  "
            f"[target > {DRAIN_TARGET:g}/s]"
        )
        print("targets met" if ok else "TARGETS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
