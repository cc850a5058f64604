"""Soak: the whole unit (`vigil run --loop`) on a looped clip for N minutes, the hub link
flapping, its process sampled every 10 s.

    python -m tools.bench.soak [--minutes 60] [--clip FILE] [--flap-every 120] [--flap-down 20]
                               [--sample-s 10] [--json] [--out FILE]

Starts its own Mosquitto (persistent sessions, so a hub-side subscriber misses nothing across a
restart) and stops it for ``--flap-down`` s every ``--flap-every`` s. The unit records incidents
(a fresh key), drives mock GPIO deterrents and writes every event to a JSON-lines file as well;
a subscriber counts what reaches the broker. Reports the RSS slope (least squares over the
samples, MB per hour, whole run and after the first tenth), open fds, threads and events lost
(written locally but never received by the subscriber, after the outbox drained).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
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

from firmware.commands.run import DEMO_CONFIG

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO = "/usr/sbin/mosquitto"


class FlappingBroker:
    """Mosquitto on a fixed loopback port with persistence on, stopped and started on demand."""

    def __init__(self, work: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {work}/\nmax_queued_messages 0\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # mosquitto saves its sessions on SIGTERM
            self.proc.wait(10)
            self.proc = None


class Counter:
    """A persistent-session subscriber on the unit's events: the hub's view."""

    def __init__(self, port: int, topic: str) -> None:
        self.keys: set[tuple] = set()
        self.lock = threading.Lock()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="vigil-soak-hub", clean_session=False
        )
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.c.reconnect_delay_set(0.2, 1.0)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        ev = cbor2.loads(msg.payload)
        with self.lock:
            self.keys.add((ev["event_id"], ev["phase"], ev["frame"], ev["time"]))

    def count(self) -> int:
        with self.lock:
            return len(self.keys)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def proc_sample(pid: int) -> dict[str, float]:
    """RSS (MB), threads and open fds of a live process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def slope_mb_per_h(t_s: list[float], rss: list[float]) -> float:
    if len(t_s) < 3:
        return float("nan")
    return float(np.polyfit(np.asarray(t_s) / 3600.0, np.asarray(rss), 1)[0])


def site_config(work: Path, clip: Path, port: int) -> Path:
    key = work / "recording.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    text = DEMO_CONFIG.read_text()
    text = text.replace('source = "vtest-30s.mp4"', f'source = "{clip}"')
    text = text.replace('data_dir = "~/.cache/vigil-demo"', f'data_dir = "{work / "data"}"')
    text = text.replace('mqtt = ""', f'mqtt = "mqtt://127.0.0.1:{port}"')
    text = text.replace("enabled = false", f'enabled = true\nkey_file = "{key}"')
    site = work / "site.toml"
    site.write_text(text)
    return site


def soak(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="vigil-soak-"))
    broker = FlappingBroker(work)
    broker.start()
    site = site_config(work, Path(args.clip).resolve(), broker.port)
    counter = Counter(broker.port, "vigil/demo-store/demo-unit/events")
    events_out = work / "events.jsonl"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = (work / "unit.log").open("w")
    cmd = [sys.executable, "-m", "firmware.cli", "run", "-c", str(site), "--loop", "--quiet"]
    unit = subprocess.Popen(
        [*cmd, "--events-out", str(events_out)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    samples: list[dict] = []
    flaps = 0
    next_sample, next_flap, up_at = t0 + 5, t0 + args.flap_every, None
    try:
        while time.monotonic() < end and unit.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                samples.append({"t_s": round(now - t0, 1), **proc_sample(unit.pid)})
                next_sample += args.sample_s
                if args.progress:
                    s = samples[-1]
                    print(
                        f"[{s['t_s']:7.0f} s] rss {s['rss_mb']:.1f} MB  threads {s['threads']}"
                        f"  fds {s['fds']}  events {counter.count()}",
                        file=sys.stderr,
                        flush=True,
                    )
            if up_at is None and now >= next_flap and now + args.flap_down < end - 30:
                broker.stop()
                flaps += 1
                up_at = now + args.flap_down
            if up_at is not None and now >= up_at:
                broker.start()
                up_at, next_flap = None, now + args.flap_every
            time.sleep(0.5)
        crashed = unit.poll() is not None
        if up_at is not None:
            broker.start()
        # let the outbox drain, then stop the unit cleanly
        last, still = -1, 0
        while still < 10:
            time.sleep(1)
            n = counter.count()
            still = still + 1 if n == last else 0
            last = n
        if unit.poll() is None:
            unit.send_signal(signal.SIGTERM)
        unit.wait(60)
        time.sleep(3)  # the last events of the shutdown
    finally:
        if unit.poll() is None:
            unit.kill()
        counter.close()
        broker.stop()
        log.close()
    written = (
        {
            (e["event_id"], e["phase"], e["frame"], e["time"])
            for e in map(json.loads, events_out.read_text().splitlines())
        }
        if events_out.exists()
        else set()
    )
    t = [s["t_s"] for s in samples]
    rss = [s["rss_mb"] for s in samples]
    tenth = len(samples) // 10
    return {
        "minutes": args.minutes,
        "samples": len(samples),
        "sample_s": args.sample_s,
        "flaps": flaps,
        "crashed": crashed,
        "exit_code": unit.returncode,
        "rss_mb_first": rss[0] if rss else None,
        "rss_mb_last": rss[-1] if rss else None,
        "rss_mb_max": max(rss) if rss else None,
        "rss_slope_mb_per_h": round(slope_mb_per_h(t, rss), 2),
        "rss_slope_mb_per_h_after_warmup": round(slope_mb_per_h(t[tenth:], rss[tenth:]), 2),
        "fds_first_last_max": [
            samples[0]["fds"],
            samples[-1]["fds"],
            max(s["fds"] for s in samples),
        ]
        if samples
        else None,
        "threads_first_last_max": [
            samples[0]["threads"],
            samples[-1]["threads"],
            max(s["threads"] for s in samples),
        ]
        if samples
        else None,
        "events_written": len(written),
        "events_received": len(written & counter.keys),
        "events_lost": len(written - counter.keys),
        "unit_log": str(work / "unit.log"),
        "rss_series": [[s["t_s"], round(s["rss_mb"], 1)] for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--clip", default=str(DEMO_CONFIG.parent / "vtest-30s.mp4"))
    p.add_argument("--flap-every", type=float, default=120.0, help="seconds between outages")
    p.add_argument("--flap-down", type=float, default=20.0, help="seconds each outage lasts")
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--progress", action="store_true", help="a line per sample on stderr")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="also write the report here")
    args = p.parse_args(argv)
    r = soak(args)
    if args.json:
        text = json.dumps(r, indent=1)
    else:
        text = "\n".join(
            [
                f"soak: {r['minutes']:g} min, {r['samples']} samples every {r['sample_s']:g} s,"
                f" link down {r['flaps']} times",
                f"  unit: {'CRASHED' if r['crashed'] else 'ran to the end'} (exit {r['exit_code']})",
                f"  RSS MB first/last/max: {r['rss_mb_first']:.1f} / {r['rss_mb_last']:.1f}"
                f" / {r['rss_mb_max']:.1f}",
                f"  RSS slope: {r['rss_slope_mb_per_h']:+.2f} MB/h (whole run),"
                f" {r['rss_slope_mb_per_h_after_warmup']:+.2f} MB/h (after the first tenth)",
                f"  fds first/last/max: {r['fds_first_last_max']}",
                f"  threads first/last/max: {r['threads_first_last_max']}",
                f"  events written {r['events_written']}, received {r['events_received']},"
                f" lost {r['events_lost']}",
                f"  unit log: {r['unit_log']}",
                "  rss series (s, MB): " + " ".join(f"{t:.0f}:{m}" for t, m in r["rss_series"]),
            ]
        )
    print(text, flush=True)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if r["crashed"] or r["events_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
