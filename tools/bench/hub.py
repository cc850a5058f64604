"""Hub service benchmarks (loopback, one run, figures against targets):

1. ingest: event payloads through decode + CDDL check + store + alerts into a real SQLite
   file (WAL), in the writer's batches; target >= 5,000 events/s (also without the CDDL
   check, to show its share; and per CPU-second of the process, the rate on one dedicated
   core when the machine is shared);
2. stream: 8 real unit links (firmware.link, on-disk outboxes) publish 50 events/s in all
   through Mosquitto to ``vigil-hub serve`` (in-process, uvicorn); a browser-like client
   reads ``/api/stream``; latency = stream receipt - the event's frame time; target p99 < 1 s;
3. api: the console's requests against a database of 1 million events (built once and
   cached under /tmp); target p99 < 100 ms per request.

    python -m tools.bench.hub [--only ingest,stream,api] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import cbor2
import numpy as np

INGEST_TARGET = 5000.0
STREAM_P99_TARGET_MS = 1000.0
API_P99_TARGET_MS = 100.0
BIG_DB = Path(tempfile.gettempdir()) / "vigil-bench-hub-1M.sqlite"


def _payload(i: int, unit: str = "u1", session: int = 1, severity: int = 2) -> bytes:
    return cbor2.dumps(
        dict(
            v=1,
            msg_id=os.urandom(16).hex(),
            session=session,
            seq=i,
            site="bench",
            unit=unit,
            event_id=f"{unit}-{i // 4}",
            type="loitering",
            rule="loitering",
            phase="start" if i % 4 == 0 else "update",
            severity=severity,
            severity_name=["info", "notice", "warn", "alert"][severity],
            start_time=1.0,
            start_frame=1,
            time=1.0 + i,
            frame=i,
            end_time=None,
            end_frame=None,
            zone="till",
            track_ids=[3, 7],
            explain={"dwell_s": 31.5, "threshold_s": 30.0},
            incident_id=None,
        )  # fmt: skip
    )


def bench_ingest(n: int) -> dict:
    from tools.hub.contract import Validator
    from tools.hub.serve.alerts import AlertStage
    from tools.hub.serve.db import HubDB
    from tools.hub.serve.ingest import Ingest, Message, Store

    out = {}
    for label, validator in (("validated", Validator()), ("unvalidated", None)):
        folder = Path(tempfile.mkdtemp(prefix="vigil-bench-ingest-"))
        db = HubDB(folder / "hub.sqlite")
        ing = Ingest(db, [Store(), AlertStage()], validator=validator)
        msgs = [
            Message("vigil/bench/u1/events", "bench", f"u{i % 8}", "events",
                    _payload(i // 8, f"u{i % 8}"), time.time())
            for i in range(n)
        ]  # fmt: skip
        t0, c0 = time.perf_counter(), time.process_time()
        for k in range(0, n, ing.max_batch):
            ing.process(msgs[k : k + ing.max_batch])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        stored = db.read().execute("SELECT COUNT(*) FROM events").fetchone()[0]
        db.close()
        shutil.rmtree(folder, ignore_errors=True)
        out[label] = {
            "events": n,
            "stored": stored,
            "events_per_s": round(n / dt),
            "events_per_cpu_s": round(n / cpu),  # the rate on one dedicated core
        }
    out["target_events_per_s"] = INGEST_TARGET
    out["load_avg_1m"] = os.getloadavg()[0]  # a shared machine: compare per-CPU-second rates
    out["ok"] = out["validated"]["events_per_s"] >= INGEST_TARGET
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A Hub (tools.hub.serve) under uvicorn in a thread, with one admin account."""

    def __init__(self, url: str, db: Path, site: str = "bench"):
        import uvicorn

        from tools.hub.serve import auth
        from tools.hub.serve.api import build_app
        from tools.hub.serve.config import ServeConfig
        from tools.hub.serve.service import Hub

        self.port = _free_port()
        cfg = ServeConfig(mqtt=url, site=site, db=db, listen=f"127.0.0.1:{self.port}")
        self.hub = Hub(cfg)
        if not auth.list_users(self.hub.db):
            auth.add_user(self.hub.db, "bench", "admin", "bench-password-1")
        self.server = uvicorn.Server(
            uvicorn.Config(build_app(self.hub), host="127.0.0.1", port=self.port, log_level="error")
        )
        self.hub.start()
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def client(self):
        import httpx

        c = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        c.post("/api/login", json={"user": "bench", "password": "bench-password-1"})
        return c

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.hub.stop()


def bench_stream(seconds: float, rate: float, units: int) -> dict:
    from firmware.link import Link
    from firmware.link.config import LinkConfig
    from tools.bench.link import BIRTH, Broker, _event

    broker = Broker()
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-stream-"))
    server = _Server(broker.url, folder / "hub.sqlite")
    got: list[tuple[float, dict]] = []
    client = server.client()

    def read() -> None:
        with client.stream("GET", "/api/stream", timeout=None) as r:
            kind = None
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "event":
                    got.append((time.time(), json.loads(line[5:])))

    threading.Thread(target=read, daemon=True).start()
    links = []
    for k in range(units):
        cfg = LinkConfig(mqtt=broker.url, reconnect_min_s=0.1, reconnect_max_s=0.5)
        link = Link(cfg, site="bench", unit=f"u{k}", data_dir=folder / f"u{k}", birth=BIRTH)
        link.start()
        links.append(link)
    try:
        deadline = time.monotonic() + 15
        while not all(x.connected for x in links) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        n = int(seconds * rate)
        period, next_t = 1.0 / rate, time.monotonic()
        for i in range(n):
            links[i % units].publish_event(_event(i, time.time()))
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
        deadline = time.monotonic() + 20
        while len([g for g in got if g[1]["type"] == "loitering"]) < n:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        for link in links:
            link.stop()
        server.close()
        broker.close()
        shutil.rmtree(folder, ignore_errors=True)
    lat = np.array([(t - ev["time"]) * 1000 for t, ev in got if ev["type"] == "loitering"])
    p99 = float(np.percentile(lat, 99)) if lat.size else float("inf")
    return {
        "units": units,
        "rate_hz": rate,
        "events": n,
        "received": int(lat.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p99_ms": round(p99, 1),
        "max_ms": round(float(lat.max()), 1) if lat.size else None,
        "target_p99_ms": STREAM_P99_TARGET_MS,
        "ok": lat.size == n and p99 < STREAM_P99_TARGET_MS,
    }


def build_big_db(path: Path, n: int) -> None:
    """n events over 30 days from 8 units (1 in 60 a footfall summary), an alert per 100."""
    from tools.hub.serve.db import HubDB, dumps

    if path.exists():
        return
    tmp = path.with_suffix(".building")
    for p in tmp.parent.glob(tmp.name + "*"):
        p.unlink()
    db = HubDB(tmp)
    now = time.time()
    start = now - 30 * 86400
    rng = np.random.default_rng(0)
    types = ["loitering", "running", "line_crossing", "crowding", "deterrent", "footfall"]
    chunk = 50_000
    with db.write() as con:
        for k in range(8):
            con.execute(
                "INSERT INTO units (site, unit, state, session, last_seen, birth, metrics) "
                "VALUES ('bench', ?, 'online', 1, ?, ?, ?)",
                (f"u{k}", now, dumps({"firmware": "0.1.0", "models": []}),
                 dumps({"fps": 9.5, "outbox": {"depth": 0, "dropped": {}}})),
            )  # fmt: skip
    for base in range(0, n, chunk):
        rows, alerts = [], []
        for i in range(base, min(n, base + chunk)):
            unit, t = f"u{i % 8}", start + (now - start) * i / n
            typ = "footfall" if i % 60 == 0 else types[int(rng.integers(0, 5))]
            sev = 0 if typ == "footfall" else int(rng.integers(0, 4))
            explain = (
                {"zones": {"till": {"visits_ended": 4, "mean_dwell_s": 22.0, "max_people": 3}}}
                if typ == "footfall"
                else {"dwell_s": 31.5, "threshold_s": 30.0}
            )
            body = {
                "v": 1, "msg_id": f"{i:032x}", "session": 1, "seq": i // 8, "site": "bench",
                "unit": unit, "event_id": f"ev{i}", "type": typ, "rule": typ, "phase": "start",
                "severity": sev, "severity_name": "warn", "start_time": t, "start_frame": i,
                "time": t, "frame": i, "end_time": None, "end_frame": None, "zone": "till",
                "track_ids": [i % 50], "explain": explain, "incident_id": None,
            }  # fmt: skip
            rows.append((body["msg_id"], "bench", unit, 1, i // 8, f"ev{i}", typ, typ, "start",
                         sev, "till", t, t, dumps(body)))  # fmt: skip
            if i % 100 == 50:
                state = "resolved" if i < n * 0.98 else "open"
                alerts.append(("bench", unit, f"ev{i}", typ, typ, "till", 2, state, t, t,
                               "deterred" if state == "resolved" else None))  # fmt: skip
        with db.write() as con:
            con.executemany(
                "INSERT INTO events (msg_id, site, unit, session, seq, event_id, type, rule, "
                "phase, severity, zone, time, received_at, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            for a in alerts:
                cur = con.execute(
                    "INSERT INTO alerts (site, unit, event_id, type, rule, zone, severity, state, "
                    "opened_at, updated_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    a,
                )
                con.execute(
                    "INSERT INTO alert_history (alert_id, at, user, action, state) "
                    "VALUES (?, ?, NULL, 'opened', 'open')",
                    (cur.lastrowid, a[8]),
                )
        print(f"  built {min(n, base + chunk):,} / {n:,} events", file=sys.stderr, flush=True)
    db.close()
    tmp.rename(path)


def bench_api(n_events: int, rounds: int) -> dict:
    build_big_db(BIG_DB, n_events)
    server = _Server("mqtt://127.0.0.1:1", BIG_DB)  # no broker: the API alone
    now = time.time()
    paths = [
        "/api/alerts?state=active",
        "/api/alerts?state=resolved&unit=u3",
        "/api/events?limit=200",
        "/api/events?unit=u5&type=running&limit=100",
        f"/api/events?since={now - 3600:.0f}",
        f"/api/events?since={now - 10 * 86400:.0f}&until={now - 9 * 86400:.0f}&zone=till",
        "/api/units",
        f"/api/footfall?since={now - 86400:.0f}",
        "/api/health",
    ]
    try:
        c = server.client()
        stored = server.hub.db.read().execute("SELECT COUNT(*) FROM events").fetchone()[0]
        times: dict[str, list[float]] = {p: [] for p in paths}
        for _ in range(rounds + 1):
            for path in paths:
                t0 = time.perf_counter()
                r = c.get(path)
                times[path].append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"{path}: {r.status_code} {r.text[:200]}")
    finally:
        server.close()
    per = {
        p: {"p50_ms": round(float(np.percentile(t[1:], 50)), 1),
            "p99_ms": round(float(np.percentile(t[1:], 99)), 1), "first_ms": round(t[0], 1)}
        for p, t in times.items()
    }  # fmt: skip
    every = np.concatenate([t[1:] for t in times.values()])
    p99 = float(np.percentile(every, 99))
    return {
        "stored_events": stored,
        "requests": int(every.size),
        "p50_ms": round(float(np.percentile(every, 50)), 1),
        "p99_ms": round(p99, 1),
        "worst_endpoint_p99_ms": max(v["p99_ms"] for v in per.values()),
        "per_endpoint": per,
        "target_p99_ms": API_P99_TARGET_MS,
        "ok": p99 < API_P99_TARGET_MS,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="ingest,stream,api")
    p.add_argument("--ingest-events", type=int, default=20_000)
    p.add_argument("--stream-seconds", type=float, default=20.0)
    p.add_argument("--api-events", type=int, default=1_000_000)
    p.add_argument("--api-rounds", type=int, default=30)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    out: dict = {}
    if "ingest" in only:
        out["ingest"] = bench_ingest(args.ingest_events)
    if "stream" in only:
        out["stream"] = bench_stream(args.stream_seconds, 50.0, 8)
    if "api" in only:
        out["api"] = bench_api(args.api_events, args.api_rounds)
    print(json.dumps(out, indent=None if args.json else 2))
    return 0 if all(v.get("ok") for v in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
