"""Hub fusion cost and memory on a synthetic store, and the tracks topic's bandwidth per unit.

    python -m tools.bench.fusion [--cameras 8] [--people 30] [--hz 5] [--seconds 120] [--hours 1]

Speed: people walk a 30 x 20 m floor seen by overlapping cameras (each sees a person within
12 m of it, with 0.3 m foot-point noise); one fusion update is every camera's unit-frame of
one tick plus ``step``: median and p95 ms of this thread's CPU time (so that a shared,
loaded host does not inflate it; target: median < 2 ms at 8 x 30 at 5 Hz).
Memory: an hour of a store where people arrive, shop ~4 min and leave; the fusion's held
tracks/links sampled each minute must stop growing (the second half's peak vs the first's).
Bandwidth: size of one CBOR tracks message per unit at the seen people count, times tracks_hz.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from tools.hub.fusion import Fusion, Observation


def _store(rng, n_people, cams, seconds, hz, arrivals_per_min=0.0, stay_s=240.0):
    """Yield (t, {camera: (local ids, xy)}) ticks of a synthetic store."""
    pos = rng.uniform([0, 0], [30, 20], (n_people, 2))
    vel = rng.normal(0, 0.7, (n_people, 2))
    born = np.zeros(n_people)
    pid = np.arange(n_people)
    next_id = n_people
    for k in range(int(seconds * hz)):
        t = k / hz
        if arrivals_per_min:
            keep = t - born < stay_s
            pos, vel, born, pid = pos[keep], vel[keep], born[keep], pid[keep]
            if rng.random() < arrivals_per_min / 60 / hz:
                pos = np.vstack([pos, [0.0, 10.0]])
                vel = np.vstack([vel, rng.normal(0, 0.7, 2)])
                born, pid = np.append(born, t), np.append(pid, next_id)
                next_id += 1
        vel += rng.normal(0, 0.1, vel.shape)
        pos = np.clip(pos + vel / hz, [0, 0], [30, 20])
        vel[(pos <= 0) | (pos >= [30, 20])] *= -1
        frame = {}
        for c, cpos in enumerate(cams):
            see = np.linalg.norm(pos - cpos, axis=1) < 12
            xy = pos[see] + rng.normal(0, 0.3, (int(see.sum()), 2))
            frame[f"cam{c}"] = (pid[see] * 16 + c, xy)
        yield t, k + 1, frame


def bench_speed(n_cams: int, n_people: int, hz: float, seconds: float) -> list[float]:
    rng = np.random.default_rng(0)
    cams = rng.uniform([0, 0], [30, 20], (n_cams, 2))
    fusion = Fusion()
    ms = []
    for t, f, frame in _store(rng, n_people, cams, seconds, hz):
        t0 = time.thread_time()
        for unit, (ids, xy) in frame.items():
            fusion.add(Observation(unit, t, f, ids, xy))
        fusion.step(t + fusion.config.latency_s)
        ms.append(1000 * (time.thread_time() - t0))
    return ms[int(10 * hz) :]  # after the first 10 s (learnt gates settled)


def bench_memory(n_cams: int, hz: float, hours: float) -> list[int]:
    rng = np.random.default_rng(1)
    cams = rng.uniform([0, 0], [30, 20], (n_cams, 2))
    fusion = Fusion()
    held = []
    for t, f, frame in _store(rng, 0, cams, hours * 3600, hz, arrivals_per_min=6.0):
        for unit, (ids, xy) in frame.items():
            fusion.add(Observation(unit, t, f, ids, xy))
        fusion.step(t + fusion.config.latency_s)
        if f % int(60 * hz) == 0:
            held.append(sum(fusion.size[:2]))
    return held


def tracks_message_bytes(n_tracks: int) -> int:
    """CBOR size of one unit's tracks message with ``n_tracks`` people (firmware.link.tracks)."""
    from firmware.link.tracks import encode_tracks

    rng = np.random.default_rng(2)
    boxes = rng.uniform(0, 1, (n_tracks, 4))
    boxes[:, 2:] = boxes[:, :2] + 0.1
    return len(
        encode_tracks(
            time_s=1_700_000_000.25,
            frame=123456,
            session=7,
            ids=np.arange(n_tracks) + 100,
            boxes=boxes,
            states=["confirmed"] * n_tracks,
            floor_xy=rng.uniform(0, 30, (n_tracks, 2)),
            floor_v=rng.normal(0, 1, (n_tracks, 2)),
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench.fusion", description=__doc__)
    p.add_argument("--cameras", type=int, default=8)
    p.add_argument("--people", type=int, default=30)
    p.add_argument("--hz", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--hours", type=float, default=1.0)
    args = p.parse_args(argv)
    ms = bench_speed(args.cameras, args.people, args.hz, args.seconds)
    med, p95 = statistics.median(ms), float(np.percentile(ms, 95))
    print(
        f"fusion update, {args.cameras} cameras x {args.people} people at {args.hz:g} Hz:"
        f" median {med:.2f} ms, p95 {p95:.2f} ms ({len(ms)} updates; target median < 2 ms:"
        f" {'PASS' if med < 2 else 'FAIL'})"
    )
    for n in (5, args.people // args.cameras * 3, args.people):
        b = tracks_message_bytes(n)
        print(
            f"tracks topic, one unit seeing {n} people: {b} B per message,"
            f" {b * args.hz / 1000:.1f} kB/s at tracks_hz {args.hz:g}"
        )
    held = bench_memory(args.cameras, args.hz, args.hours)
    half = len(held) // 2
    first, second = max(held[:half]), max(held[half:])
    print(
        f"memory over {args.hours:g} h of a synthetic store (people arrive, stay ~4 min, leave):"
        f" tracks+links held peak {first} in the first half, {second} in the second"
        f" ({'bounded' if second <= 1.5 * first else 'GROWING'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
