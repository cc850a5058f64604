"""Tracker benchmark: Vigil's tracker beside public trackers on the same MOT15 detections.

Accuracy (HOTA, DetA, AssA, MOTA, IDF1, ID switches, combined over the sequences) and
tracker-only speed: detections are preloaded and converted to each library's input type
before timing, so only the ``update`` calls are timed (CPU time of this process, the
trackers' runs interleaved, so other load on a shared machine hits all alike); frames per
second is the median of ``--runs`` runs. Also the cost of one update with 30 people in
view (median microseconds).

    PYTHONPATH=. .venv/bin/python -m tools.bench.tracker [--runs 5] [--json out.json]

Anchors (each library's defaults, frame rate from seqinfo.ini): supervision ByteTrack,
roboflow `trackers` ByteTrack and BoT-SORT (no camera-motion compensation, no re-id), norfair
with IoU distance (Frigate's tracker library). A library that is not installed is listed as
missing. Install them with ``pip install -r tools/bench/requirements-anchors.txt`` plus the
--no-deps line described there (their pinned dependencies clash with the unit's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firmware.paths import eval_data_dir
from firmware.track import Tracker, TrackerConfig
from firmware.types import PERSON, Detections, TrackState
from tools.eval.mot import evaluate, format_table, read_mot, read_seqinfo
from tools.eval.run_track import detections_by_frame, result_rows

Seq = dict  # name, fps, frames (list[Detections]), gt rows, n


def load_sequences(root: Path, det_name: str = "det.txt") -> list[Seq]:
    seqs = []
    for d in sorted(p for p in root.iterdir() if (p / "det" / det_name).is_file()):
        info = read_seqinfo(d / "seqinfo.ini")
        n = int(info["seqLength"])
        frames = detections_by_frame(read_mot(d / "det" / det_name, max_frame=n).rows, n)
        gt = read_mot(d / "gt" / "gt.txt").rows
        seqs.append(
            {"name": d.name, "fps": float(info["frameRate"]), "frames": frames, "gt": gt, "n": n}
        )
    return seqs


# ----------------------------------------------------------------------------- adapters
# Each adapter: make(fps) -> (convert(Detections) -> input, step(input, t) -> rows (k,6): id x y w h)


def _ours(config: TrackerConfig | None = None):
    def make(fps: float):
        tracker = Tracker(config or TrackerConfig(), fps=fps)

        def step(d: Detections, t: float):
            tr = tracker.update(d, t)
            return result_rows(0, tr)[:, 1:6]

        return (lambda d: d), step

    return make


def _sv_to_rows(out) -> np.ndarray:
    ids = np.asarray(out.tracker_id if out.tracker_id is not None else [], np.float64)
    keep = ids >= 0
    b = np.asarray(out.xyxy, np.float64)[keep]
    return np.column_stack([ids[keep], b[:, :2], b[:, 2:] - b[:, :2]])


def _to_sv(d: Detections):
    import supervision as sv

    return sv.Detections(
        xyxy=d.boxes.astype(np.float32),
        confidence=d.scores.astype(np.float32),
        class_id=np.zeros(len(d), int),
    )


def _supervision_bytetrack(fps: float):
    import warnings

    import supervision as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker = sv.ByteTrack(frame_rate=fps)
    return _to_sv, lambda x, t: _sv_to_rows(tracker.update_with_detections(x))


def _trackers_bytetrack(fps: float):
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker(frame_rate=fps)
    return _to_sv, lambda x, t: _sv_to_rows(tracker.update(x))


def _trackers_botsort(fps: float):
    from trackers import BoTSORTTracker

    tracker = BoTSORTTracker(frame_rate=fps, enable_cmc=False)
    return _to_sv, lambda x, t: _sv_to_rows(tracker.update(x))


def _norfair_iou(fps: float):
    import norfair

    tracker = norfair.Tracker(distance_function="iou", distance_threshold=0.7)

    def convert(d: Detections):
        return [
            norfair.Detection(points=b.reshape(2, 2).astype(np.float64), scores=np.array([s, s]))
            for b, s in zip(d.boxes, d.scores, strict=True)
        ]

    def step(x, t):
        objs = tracker.update(detections=x)
        if not objs:
            return np.zeros((0, 5))
        e = np.array([o.estimate.reshape(4) for o in objs])
        ids = np.array([o.id for o in objs], np.float64)
        return np.column_stack([ids, e[:, :2], e[:, 2:] - e[:, :2]])

    return convert, step


ANCHORS: dict[str, Callable] = {
    "supervision ByteTrack": _supervision_bytetrack,
    "trackers ByteTrack": _trackers_bytetrack,
    "trackers BoT-SORT": _trackers_botsort,
    "norfair IoU": _norfair_iou,
}


# ----------------------------------------------------------------------------- running
def run_tracker(make: Callable, seqs: list[Seq]) -> tuple[dict, float]:
    """One pass over all sequences: ({name: result rows}, CPU seconds spent in update calls)."""
    results, spent = {}, 0.0
    for s in seqs:
        convert, step = make(s["fps"])
        inputs = [convert(d) for d in s["frames"]]
        fps = s["fps"]
        outs = []
        t0 = time.process_time()
        for i, x in enumerate(inputs):
            outs.append(step(x, i / fps))
        spent += time.process_time() - t0
        rows = [
            np.column_stack([np.full(len(o), i + 1), o, np.ones(len(o)), -np.ones((len(o), 3))])
            for i, o in enumerate(outs)
            if len(o)
        ]
        results[s["name"]] = np.concatenate(rows) if rows else np.zeros((0, 10))
    return results, spent


def crowd_cost_us(n_people: int = 30, frames: int = 600, runs: int = 3, seed: int = 0) -> float:
    """Median microseconds per update with ``n_people`` walking, jittered, 10 % missed."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([50, 100], [1800, 900], (n_people, 2))
    vel = rng.uniform(-60, 60, (n_people, 2))
    size = rng.uniform([40, 110], [80, 220], (n_people, 2))
    fps = 25.0
    dets = []
    for i in range(frames):
        p = pos + vel * (i / fps) + rng.normal(0, 2, (n_people, 2))
        keep = rng.random(n_people) > 0.1
        b = np.concatenate([p - size / 2, p + size / 2], axis=1)[keep].astype(np.float32)
        s = rng.uniform(0.3, 0.99, keep.sum()).astype(np.float32)
        dets.append(Detections(b, s, np.full(len(b), PERSON, np.int16)))
    per_run = []
    for _ in range(runs):
        tracker = Tracker(TrackerConfig(), fps=fps)
        times = []
        for i, d in enumerate(dets):
            t0 = time.process_time()
            out = tracker.update(d, i / fps)
            times.append(time.process_time() - t0)
        assert (out.states == TrackState.CONFIRMED).sum() > 0.7 * n_people
        per_run.append(statistics.median(times[50:]) * 1e6)
    return statistics.median(per_run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.bench.tracker", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--data", type=Path, default=None, help="MOT15 folder (default <VIGIL_EVAL_DATA>/mot15)"
    )
    p.add_argument("--runs", type=int, default=5, help="timed runs per tracker (median reported)")
    p.add_argument("--only-ours", action="store_true", help="skip the anchors")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    root = args.data or eval_data_dir() / "mot15"
    if not root.is_dir():
        print(
            f"tracker bench: MOT15 data not found at {root} (set VIGIL_EVAL_DATA)", file=sys.stderr
        )
        return 2
    seqs = load_sequences(root)
    n_frames = sum(s["n"] for s in seqs)
    print(f"{len(seqs)} sequences, {n_frames} frames: {', '.join(s['name'] for s in seqs)}")
    entries = {"vigil": _ours()}
    if not args.only_ours:
        entries.update(ANCHORS)
    table: dict[str, dict] = {}
    ready: dict[str, Callable] = {}
    for name, make in entries.items():
        try:
            results, _ = run_tracker(make, seqs)
        except ImportError as e:
            print(f"{name}: not installed ({e.name}); skipped")
            continue
        ready[name] = make
        m = evaluate({s["name"]: (s["gt"], results[s["name"]], s["n"]) for s in seqs})
        table[name] = {k: v for k, v in m["COMBINED"].items() if k != "_row"}
        print(format_table(m, title=f"--- {name}"))
    # Timed runs interleaved (one of each tracker per round) so load from other processes
    # on a shared machine hits every tracker alike; CPU time of this process, not wall time.
    speeds: dict[str, list[float]] = {name: [] for name in ready}
    for _ in range(args.runs):
        for name, make in ready.items():
            speeds[name].append(n_frames / run_tracker(make, seqs)[1])
    for name in ready:
        table[name]["fps"] = statistics.median(speeds[name])
    print()
    print(
        f"{'tracker':<24}{'HOTA':>7}{'DetA':>7}{'AssA':>7}{'MOTA':>7}{'IDF1':>7}{'IDsw':>6}{'fps':>9}"
    )
    for name, r in table.items():
        print(
            f"{name:<24}{100 * r['HOTA']:7.2f}{100 * r['DetA']:7.2f}{100 * r['AssA']:7.2f}"
            f"{100 * r['MOTA']:7.2f}{100 * r['IDF1']:7.2f}{r['IDsw']:6d}{r['fps']:9.0f}"
        )
    cost = crowd_cost_us()
    print(f"\nvigil tracker, 30 people in view: {cost:.0f} us per update (target < 1000 us)")
    anchors = {k: v for k, v in table.items() if k != "vigil"}
    if anchors:
        best_hota = max(anchors.items(), key=lambda kv: kv[1]["HOTA"])
        best_idf1 = max(anchors.items(), key=lambda kv: kv[1]["IDF1"])
        ours = table["vigil"]
        print(
            f"HOTA vs best anchor ({best_hota[0]}): {100 * (ours['HOTA'] - best_hota[1]['HOTA']):+.2f} points (target >= +2.00)"
        )
        print(
            f"IDF1 vs best anchor ({best_idf1[0]}): {100 * (ours['IDF1'] - best_idf1[1]['IDF1']):+.2f} points (target >= 0)"
        )
        if "trackers ByteTrack" in table:
            ratio = ours["fps"] / table["trackers ByteTrack"]["fps"]
            print(f"throughput vs trackers ByteTrack: x{ratio:.2f} (target >= 1)")
    if args.json:
        args.json.write_text(
            json.dumps({"table": table, "crowd30_us": cost}, indent=2, default=float)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
