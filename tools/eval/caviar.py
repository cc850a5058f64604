"""CAVIAR behaviour evaluation: ground-truth XML -> MOT tracks file -> the unit's rule
engine -> events scored against the CAVIAR labels.

    python -m tools.eval.caviar [--data DIR] [--out DIR] [--json FILE]

Frames are counted from 1 (CAVIAR's XML counts from 0). Labels, per sequence:
``fight`` = a group whose context is ``fighting``; ``fall`` = an object whose context is
``drop down`` while its movement is ``active`` or ``inactive``; ``left_object`` = an object
whose role is ``leaving object``; ``running`` = an object whose movement is ``running`` for
at least 10 frames. Each label is a maximal run of consecutive frames. A predicted event
matches a labelled interval of the same type when they overlap within 50 frames (2 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.paths import eval_data_dir
from firmware.types import PERSON, SUITCASE

SCORED_TYPES = ("fight", "fall", "left_object", "running")
TOLERANCE = 50  # frames: 2 s at 25 fps
MIN_RUNNING_FRAMES = 10
FPS = 25.0
SIZE = (384, 288)
# Sequences with no labelled incident, where false alarms are reported one by one.
FA_CATEGORIES = ("Browsing", "Meeting", "Walking")
FA_SEQUENCES = ("Rest_InChair",)


@dataclass(frozen=True, slots=True)
class Interval:
    type: str
    start: int  # frames from 1, inclusive
    end: int
    ids: tuple[int, ...]


@dataclass(slots=True)
class Sequence:
    name: str
    category: str
    xml: Path
    rows: list[tuple[int, int, float, float, float, float, float, int]]  # MOT rows
    labels: list[Interval]
    n_frames: int


def _runs(frames: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive frame numbers."""
    out: list[tuple[int, int]] = []
    for f in sorted(frames):
        if out and f == out[-1][1] + 1:
            out[-1] = (out[-1][0], f)
        else:
            out.append((f, f))
    return out


def parse_xml(path: Path) -> Sequence:
    """Read one CAVIAR ground-truth file into MOT rows and labelled intervals."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not valid CAVIAR XML ({e})") from None
    rows = []
    fight: dict[tuple[int, ...], list[int]] = defaultdict(list)
    fall: dict[int, list[int]] = defaultdict(list)
    left: dict[int, list[int]] = defaultdict(list)
    running: dict[int, list[int]] = defaultdict(list)
    leaving_ids: set[int] = set()
    n_frames = 0
    for fr in root.iter("frame"):
        f = int(fr.get("number", "0")) + 1
        n_frames = max(n_frames, f)
        for o in fr.iterfind("objectlist/object"):
            oid = int(o.get("id", "-1"))
            b = o.find("box")
            h = o.find("hypothesislist/hypothesis")
            if b is None or h is None:
                continue
            role = (h.findtext("role") or "").strip()
            movement = (h.findtext("movement") or "").strip()
            context = (h.findtext("context") or "").strip()
            xc, yc, w, hh = (float(b.get(k, "0")) for k in ("xc", "yc", "w", "h"))
            if role == "leaving object":
                leaving_ids.add(oid)
                left[oid].append(f)
            if context == "drop down" and movement in ("active", "inactive"):
                fall[oid].append(f)
            if movement == "running":
                running[oid].append(f)
            rows.append((f, oid, xc - w / 2, yc - hh / 2, w, hh, 1.0, PERSON))
        for g in fr.iterfind("grouplist/group"):
            h = g.find("hypothesislist/hypothesis")
            if h is not None and (h.findtext("context") or "").strip() == "fighting":
                members = tuple(
                    sorted(int(m) for m in (g.findtext("members") or "").split(",") if m.strip())
                )
                fight[members].append(f)
    # An object that is ever a left object is a bag for its whole life.
    rows = [r if r[1] not in leaving_ids else (*r[:7], SUITCASE) for r in rows]
    labels: list[Interval] = []
    for kind, table, min_len in (
        ("fight", fight, 1),
        ("fall", fall, 1),
        ("left_object", left, 1),
        ("running", running, MIN_RUNNING_FRAMES),
    ):
        for key, frames in table.items():
            ids = key if isinstance(key, tuple) else (key,)
            for a, b in _runs(frames):
                if b - a + 1 >= min_len:
                    labels.append(Interval(kind, a, b, ids))
    labels.sort(key=lambda i: (i.type, i.start))
    return Sequence(path.parent.name, path.parent.parent.name, path, sorted(rows), labels, n_frames)


def write_tracks(seq: Sequence, path: Path) -> None:
    """MOT tracks file: frame,id,x,y,w,h,conf,class (frames from 1, COCO class ids)."""
    with path.open("w", encoding="utf-8") as fh:
        for f, oid, x, y, w, h, conf, cls in seq.rows:
            fh.write(f"{f},{oid},{x:.1f},{y:.1f},{w:.1f},{h:.1f},{conf:.2f},{cls}\n")


def find_sequences(data: Path) -> list[Path]:
    root = data / "caviar" / "inria" / "gt"
    if not root.is_dir():
        raise FileNotFoundError(f"CAVIAR ground truth not found at {root} (set VIGIL_EVAL_DATA)")
    return sorted(root.glob("*/*/*.xml"))


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int, tol: int = TOLERANCE) -> bool:
    return a_start <= b_end + tol and b_start <= a_end + tol


def score(labels: list[Interval], events: list[dict]) -> dict[str, dict[str, int]]:
    """Per type: labelled, found (labels matched), predicted, false alarms (predictions
    matching no label of their type)."""
    out = {}
    for kind in SCORED_TYPES:
        lab = [i for i in labels if i.type == kind]
        pred = [e for e in events if e["type"] == kind]
        found = sum(
            any(overlaps(i.start, i.end, e["start_frame"], e["end_frame"]) for e in pred)
            for i in lab
        )
        fa = sum(
            not any(overlaps(i.start, i.end, e["start_frame"], e["end_frame"]) for i in lab)
            for e in pred
        )
        out[kind] = {
            "labelled": len(lab),
            "found": found,
            "predicted": len(pred),
            "false_alarms": fa,
        }
    return out


def run_sequence(seq: Sequence, workdir: Path, cfg: Any = None) -> list[dict]:
    """Write the tracks file and run `vigil-eval behave` on it, as a user would (or, with
    ``cfg``, its engine with that config)."""
    from tools.eval import run_behave

    tracks = workdir / f"{seq.name}.tracks.txt"
    out = workdir / f"{seq.name}.events.jsonl"
    write_tracks(seq, tracks)
    if cfg is not None:
        return run_behave.behave(tracks, cfg, FPS, SIZE)
    args = argparse.Namespace(
        tracks=str(tracks), site=None, fps=FPS, size=f"{SIZE[0]}x{SIZE[1]}", out=str(out)
    )
    rc = run_behave.run(args)
    if rc != 0:
        raise RuntimeError(f"behave failed on {seq.name} (exit {rc})")
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def evaluate(data: Path, workdir: Path, cfg: Any = None) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    per_seq = {}
    totals = {
        k: {"labelled": 0, "found": 0, "predicted": 0, "false_alarms": 0} for k in SCORED_TYPES
    }
    for xml in find_sequences(data):
        seq = parse_xml(xml)
        events = run_sequence(seq, workdir, cfg)
        s = score(seq.labels, events)
        per_seq[seq.name] = {
            "category": seq.category,
            "scores": s,
            "false_alarms": sum(v["false_alarms"] for v in s.values()),
            "events": [
                {k: e[k] for k in ("type", "start_frame", "end_frame", "track_ids")}
                for e in events
                if e["type"] in SCORED_TYPES
            ],
            "labels": [[i.type, i.start, i.end, list(i.ids)] for i in seq.labels],
        }
        for k in SCORED_TYPES:
            for m in totals[k]:
                totals[k][m] += s[k][m]
    return {"totals": totals, "sequences": per_seq}


# Leave-one-sequence-out: per scored type, the threshold it depends on and the values tried
# (the default in the middle). Each is chosen on 13 sequences and scored on the 14th.
LOO_GRID: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "fight": ("fight", "min_agitation", (1.1, 1.2, 1.3, 1.4, 1.5)),
    "fall": ("fall", "extent_growth", (1.2, 1.25, 1.3, 1.35, 1.4)),
    "running": ("running", "min_speed", (2.1, 2.3, 2.5, 2.7, 2.9)),
    "left_object": ("left_object", "min_alone_s", (2.0, 3.0, 4.0)),
}


def leave_one_out(data: Path, workdir: Path) -> dict:
    """Each sequence scored with thresholds chosen on the other 13 (per type: the value of
    its threshold with most found minus false alarms there; ties go to the default)."""
    from firmware.config import default

    base = default().config
    runs: dict[tuple[str, float], dict] = {}
    for kind, (rule, key, values) in LOO_GRID.items():
        for v in values:
            rules = base.rules.model_copy(
                update={rule: getattr(base.rules, rule).model_copy(update={key: v})}
            )
            runs[kind, v] = evaluate(data, workdir, base.model_copy(update={"rules": rules}))
    names = list(next(iter(runs.values()))["sequences"])
    totals = {
        k: {"labelled": 0, "found": 0, "predicted": 0, "false_alarms": 0} for k in SCORED_TYPES
    }
    chosen: dict[str, dict[str, float]] = {}
    for held in names:
        chosen[held] = {}
        for kind, (rule, key, values) in LOO_GRID.items():
            default_v = getattr(getattr(base.rules, rule), key)

            def gain(v: float, kind: str, held: str, default_v: float) -> tuple[int, bool]:
                seqs = runs[kind, v]["sequences"]
                sc = [seqs[n]["scores"][kind] for n in names if n != held]
                return sum(x["found"] - x["false_alarms"] for x in sc), v == default_v

            best = max(values, key=lambda v: gain(v, kind, held, default_v))
            chosen[held][kind] = best
            for m, x in runs[kind, best]["sequences"][held]["scores"][kind].items():
                totals[kind][m] += x
    return {
        "totals": totals,
        "chosen": chosen,
        "grid": {k: list(v[2]) for k, v in LOO_GRID.items()},
    }


def table(result: dict) -> str:
    lines = ["| type | labelled | found | predicted | false alarms |", "|---|---|---|---|---|"]
    for k, v in result["totals"].items():
        lines.append(
            f"| {k} | {v['labelled']} | {v['found']} | {v['predicted']} | {v['false_alarms']} |"
        )
    total_fa = sum(v["false_alarms"] for v in result["totals"].values())
    lines.append(f"| all | | | | {total_fa} |")
    lines += ["", "| sequence | false alarms |", "|---|---|"]
    seqs = result["sequences"]
    quiet = [n for n, s in seqs.items() if s["category"] in FA_CATEGORIES or n in FA_SEQUENCES]
    for name in quiet + [n for n in seqs if n not in quiet]:
        note = "" if name in quiet else " (has labelled incidents)"
        lines.append(f"| {name}{note} | {seqs[name]['false_alarms']} |")
    return "\n".join(lines)


def _default_of(kind: str) -> float:
    from firmware.config import default

    rule, key, _ = LOO_GRID[kind]
    return getattr(getattr(default().config.rules, rule), key)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.eval.caviar", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--data",
        default=None,
        help="evaluation data folder (default: $VIGIL_EVAL_DATA or ../shared/data)",
    )
    p.add_argument(
        "--out",
        default="caviar-eval",
        help="folder for the tracks and events files (default: caviar-eval)",
    )
    p.add_argument(
        "--json",
        default=None,
        help="also write the full result (per sequence, events and labels) here",
    )
    p.add_argument("--verbose", action="store_true", help="print each sequence's labels and events")
    p.add_argument(
        "--loo",
        action="store_true",
        help="also report leave-one-sequence-out: each sequence with thresholds chosen on the other 13",
    )
    args = p.parse_args(argv)
    data = Path(args.data) if args.data else eval_data_dir()
    try:
        result = evaluate(data, Path(args.out))
    except (FileNotFoundError, ValueError) as e:
        print(f"caviar: error: {e}", file=sys.stderr)
        return 2
    if args.verbose:
        for name, s in result["sequences"].items():
            print(f"{name}: labels {s['labels']}")
            for e in s["events"]:
                print(f"    {e}")
    print(table(result))
    if args.loo:
        loo = leave_one_out(data, Path(args.out))
        print("\nleave-one-sequence-out (thresholds chosen on the other 13):")
        print("\n".join(table({"totals": loo["totals"], "sequences": {}}).splitlines()[:7]))
        moved = {
            n: {k: v for k, v in c.items() if v != _default_of(k)} for n, c in loo["chosen"].items()
        }
        for n, c in moved.items():
            if c:
                print(f"  {n} held out: {c}")
        result["leave_one_out"] = loo
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
