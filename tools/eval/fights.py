"""Fight detection on real CCTV clips (the Surveillance Camera Fight Dataset's dev half).

    python -m tools.eval.fights [--data DIR] [--cache DIR] [--config SITE.toml] [--pose]
                                [--limit N] [--folds 5] [--json FILE] [--replay [--retrack]]

Each clip goes through the unit as ``vigil run --source CLIP --fast --mqtt none
--events-out EV.jsonl`` does (same config loading, same stages, a cold start: no learnt
background, tracks born in the clip); a clip counts as flagged when any ``fight`` event
starts in it. The unit's tracks of every frame (ids, boxes, scores, classes, keypoints when
a pose model runs) are cached next to the events, so rule changes can be re-scored with
``--replay`` (the rule engine on the cached tracks, seconds instead of minutes).

Reported: clip accuracy, fight recall and false-fight rate on all clips, per source video,
and over folds grouped by source video (``sources.json``; every clip of a source in one
fold), so no figure mixes clips of a video on both sides.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware.paths import eval_data_dir

LABELS = {"fight": True, "noFight": False}


@dataclass(frozen=True, slots=True)
class Clip:
    name: str  # "fight/fi005.mp4"
    path: Path
    fight: bool
    source: str


def find_clips(data: Path) -> list[Clip]:
    """The clips under ``data/fights`` with their label and source video."""
    root = data / "fights"
    sources_file = root / "sources.json"
    if not sources_file.is_file():
        raise FileNotFoundError(f"{sources_file}: not found (the fight clips' source map)")
    sources = json.loads(sources_file.read_text())
    clips = []
    for name in sorted(sources):
        kind = name.split("/", 1)[0]
        if kind not in LABELS:
            raise ValueError(f"{sources_file}: {name!r} is not under fight/ or noFight/")
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in {sources_file} but missing")
        clips.append(Clip(name, path, LABELS[kind], str(sources[name])))
    return clips


def _cache_stem(cache: Path, clip: Clip) -> Path:
    return cache / clip.name.replace("/", "__").rsplit(".", 1)[0]


class _TrackRecorder:
    """Wraps the loop's probe: keeps each frame's tracks as plain arrays."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.rows: list[dict[str, np.ndarray]] = []

    def frame(self, frame: Any, detections: Any = None, tracks: Any = None, *a, **kw) -> None:
        if tracks is not None:
            people = (
                np.zeros((0, 5), np.float32)
                if detections is None or not len(detections)
                else np.column_stack([detections.boxes, detections.scores])[
                    np.asarray(detections.classes) == 1
                ].astype(np.float32)
            )
            kp = tracks.keypoints
            self.rows.append(
                {
                    "index": np.int64(frame.index),
                    "t": np.float64(frame.timestamp),
                    "ids": np.asarray(tracks.ids, np.int64),
                    "boxes": np.asarray(tracks.boxes, np.float32).reshape(-1, 4),
                    "scores": np.asarray(tracks.scores, np.float32),
                    "classes": np.asarray(tracks.classes, np.int16),
                    "keypoints": np.full((len(tracks.ids), 17, 3), np.nan, np.float32)
                    if kp is None
                    else np.asarray(kp, np.float32),
                    "detections": people,  # person detections: x1, y1, x2, y2, score
                }
            )
        if self.inner is not None:
            self.inner.frame(frame, detections, tracks, *a, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run_clip(clip: Clip, cache: Path, config: Path | None, pose: bool) -> dict[str, Any]:
    """The unit on one clip (as `vigil run --fast --mqtt none --events-out`); events and
    per-frame tracks written to the cache."""
    from firmware.commands.run import DEMO_CONFIG
    from firmware.config import load
    from firmware.unit import RunOptions, apply_overrides, build_unit

    stem = _cache_stem(cache, clip)
    events_path = stem.with_suffix(".events.jsonl")
    loaded = load(config or DEMO_CONFIG)
    if pose:
        det = loaded.config.detector.model_copy(update={"pose_model": "movenet-multipose-int8"})
        loaded.config.detector = det  # type: ignore[misc]
    with tempfile.TemporaryDirectory(prefix="vigil-fights-") as ddir:
        opts = RunOptions(
            source=str(clip.path),
            fast=True,
            mqtt="none",
            events_out=str(events_path),
            data_dir=ddir,
            watchdog=False,
        )
        loaded = apply_overrides(loaded, opts)
        unit = build_unit(loaded, opts, status_out=None)
        rec = _TrackRecorder(unit.loop.s.probe)
        unit.loop.s.probe = rec
        fps = float(unit.loop.s.reader.fps)
        size = tuple(int(v) for v in unit.loop.s.reader.frame_size)
        unit.run()
    np.savez_compressed(
        stem.with_suffix(".tracks.npz"),
        fps=fps,
        size=np.array(size),
        **{
            f"{k}_{i}": v
            for i, row in enumerate(rec.rows)
            for k, v in row.items()  # one array per frame and field
        },
        n=len(rec.rows),
    )
    return {"events": read_events(events_path), "fps": fps, "size": size}


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_tracks(path: Path) -> tuple[float, tuple[int, int], list[dict[str, np.ndarray]]]:
    """A cached clip's fps, frame size and per-frame tracks."""
    z = np.load(path)
    n = int(z["n"])
    keys = ("index", "t", "ids", "boxes", "scores", "classes", "keypoints", "detections")
    rows = [{k: z[f"{k}_{i}"] for k in keys} for i in range(n)]
    return float(z["fps"]), (int(z["size"][0]), int(z["size"][1])), rows


def replay_clip(path: Path, cfg: Any, retrack: bool = False) -> list[dict[str, Any]]:
    """The rule engine alone on a clip's cached tracks; events as dicts. Keypoints are
    used only when the config runs a pose model (as the unit would have them). With
    ``retrack`` the config's tracker first re-tracks the cached person detections (for
    tracker changes; carried objects and keypoints are not replayed then)."""
    from firmware.rules import RuleEngine
    from firmware.track import Tracker
    from firmware.types import PERSON, Detections, Tracks, TrackState

    fps, size, rows = load_tracks(path)
    use_kp = cfg.detector.pose_model is not None and not retrack
    engine = RuleEngine(cfg, frame_size=size, fps=fps)
    tracker = Tracker(cfg.tracker, fps=fps) if retrack else None
    events = []
    t = f = 0
    for r in rows:
        t, f = float(r["t"]), int(r["index"])
        if tracker is not None:
            d = r["detections"].reshape(-1, 5)
            people = Detections(d[:, :4], d[:, 4], np.full(len(d), PERSON, np.int16))
            events += engine.update(tracker.update(people, t), t, f)
            continue
        n = len(r["ids"])
        kp = r["keypoints"]
        tracks = Tracks(
            ids=r["ids"],
            boxes=r["boxes"],
            scores=r["scores"],
            classes=r["classes"],
            states=np.full(n, TrackState.CONFIRMED, np.int8),
            velocities=np.zeros((n, 2), np.float32),
            matched=np.ones(n, bool),
            keypoints=kp if use_kp and n else None,
        )
        events += engine.update(tracks, t, f)
    events += engine.close(t, f)
    return [e.to_dict() for e in events]


def flagged(events: list[dict[str, Any]]) -> bool:
    return any(e.get("type") == "fight" for e in events)


def metrics(truth: list[bool], pred: list[bool]) -> dict[str, Any]:
    """Clip accuracy, fight recall, false-fight rate (with the counts behind them)."""
    y, p = np.array(truth, bool), np.array(pred, bool)
    fights, quiet = int(y.sum()), int((~y).sum())
    tp, fp = int((y & p).sum()), int((~y & p).sum())
    return {
        "clips": len(y),
        "fight_clips": fights,
        "non_fight_clips": quiet,
        "found": tp,
        "false": fp,
        "accuracy": float((y == p).mean()) if len(y) else float("nan"),
        "fight_recall": tp / fights if fights else float("nan"),
        "false_fight_rate": fp / quiet if quiet else float("nan"),
    }


def grouped_folds(clips: list[Clip], k: int) -> list[list[int]]:
    """Clip indices in ``k`` folds, whole source videos per fold (largest first into the
    smallest fold: deterministic and balanced)."""
    by_src: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        by_src.setdefault(c.source, []).append(i)
    folds: list[list[int]] = [[] for _ in range(min(k, len(by_src)))]
    for src in sorted(by_src, key=lambda s: (-len(by_src[s]), s)):
        min(folds, key=len).extend(by_src[src])
    return folds


def report(clips: list[Clip], preds: list[bool], k: int) -> dict[str, Any]:
    truth = [c.fight for c in clips]
    folds = grouped_folds(clips, k)
    per_fold = [metrics([truth[i] for i in f], [preds[i] for i in f]) for f in folds]
    per_source = {}
    for src in sorted({c.source for c in clips}):
        idx = [i for i, c in enumerate(clips) if c.source == src]
        per_source[src] = metrics([truth[i] for i in idx], [preds[i] for i in idx])
    return {"all": metrics(truth, preds), "folds": per_fold, "sources": per_source}


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f}%"


def table(rep: dict[str, Any]) -> str:
    lines = [
        "| split | clips | fights found | false fights | accuracy | recall | false-fight rate |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(name: str, m: dict[str, Any]) -> None:
        lines.append(
            f"| {name} | {m['clips']} | {m['found']}/{m['fight_clips']} | {m['false']}/{m['non_fight_clips']} "
            f"| {_pct(m['accuracy'])} | {_pct(m['fight_recall'])} | {_pct(m['false_fight_rate'])} |"
        )

    row("all", rep["all"])
    for i, m in enumerate(rep["folds"], 1):
        row(f"fold {i} (by source)", m)
    for src, m in rep["sources"].items():
        row(src, m)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.eval.fights", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", default=None, help="evaluation data (default: $VIGIL_EVAL_DATA)")
    p.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "vigil-fights"),
        help="events and tracks per clip (default: a folder under /tmp); clips already there are not run again",
    )
    p.add_argument("--config", default=None, help="site config (default: vigil run's demo config)")
    p.add_argument(
        "--pose",
        action="store_true",
        help="also run the MoveNet pose stage (cached keypoints; --replay uses them only when the config has detector.pose_model)",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N clips of each kind")
    p.add_argument("--folds", type=int, default=5, help="folds grouped by source video (default 5)")
    p.add_argument("--force", action="store_true", help="run clips again even when cached")
    p.add_argument(
        "--replay",
        action="store_true",
        help="score the rule engine on the cached tracks instead of the cached events",
    )
    p.add_argument(
        "--retrack",
        action="store_true",
        help="with --replay: re-track the cached person detections with the config's tracker first",
    )
    p.add_argument("--json", default=None, help="also write the report as JSON here")
    args = p.parse_args(argv)
    data = Path(args.data) if args.data else eval_data_dir()
    try:
        clips = find_clips(data)
    except (FileNotFoundError, ValueError) as e:
        print(f"fights: error: {e}", file=sys.stderr)
        return 2
    # Fight and non-fight clips alternate, so a partial run is balanced.
    fights, quiet = [c for c in clips if c.fight], [c for c in clips if not c.fight]
    if args.limit is not None:
        fights, quiet = fights[: args.limit], quiet[: args.limit]
    clips = [c for pair in zip(fights, quiet, strict=False) for c in pair]
    clips += fights[len(quiet) :] + quiet[len(fights) :]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    cfg = None
    if args.replay:
        from firmware.commands.run import DEMO_CONFIG
        from firmware.config import load

        cfg = load(args.config or DEMO_CONFIG).config
    preds = []
    for n, clip in enumerate(clips, 1):
        stem = _cache_stem(cache, clip)
        tracks = stem.with_suffix(".tracks.npz")
        if args.replay:
            if not tracks.is_file():
                print(
                    f"fights: error: {tracks}: not cached; run without --replay first",
                    file=sys.stderr,
                )
                return 2
            events = replay_clip(tracks, cfg, args.retrack)
        elif tracks.is_file() and not args.force:
            events = read_events(stem.with_suffix(".events.jsonl"))
        else:
            events = run_clip(clip, cache, Path(args.config) if args.config else None, args.pose)[
                "events"
            ]
        preds.append(flagged(events))
        print(
            f"[{n}/{len(clips)}] {clip.name}: {'fight' if preds[-1] else '-'}",
            file=sys.stderr,
            flush=True,
        )
    rep = report(clips, preds, args.folds)
    rep["clips"] = {
        c.name: {"fight": c.fight, "source": c.source, "flagged": f}
        for c, f in zip(clips, preds, strict=True)
    }
    print(table(rep))
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
