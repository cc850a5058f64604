"""tools/eval/fights.py: scoring, folds grouped by source video, one real clip through the unit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.paths import eval_data_dir
from tools.eval import fights

FIGHTS = eval_data_dir() / "fights"


def _clip(name: str, fight: bool, source: str) -> fights.Clip:
    return fights.Clip(name, Path(name), fight, source)


def test_metrics_count_recall_and_false_fights():
    m = fights.metrics([True, True, True, False, False], [True, False, True, True, False])
    assert (m["found"], m["false"]) == (2, 1)
    assert m["fight_recall"] == pytest.approx(2 / 3)
    assert m["false_fight_rate"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(3 / 5)


def test_folds_never_split_a_source_video():
    clips = [_clip(f"fight/{i}.mp4", i % 2 == 0, f"src{i % 7}") for i in range(40)]
    folds = fights.grouped_folds(clips, 5)
    assert sorted(i for f in folds for i in f) == list(range(40))
    owner = {}
    for k, f in enumerate(folds):
        for i in f:
            assert owner.setdefault(clips[i].source, k) == k
    assert max(map(len, folds)) - min(map(len, folds)) <= 6  # 7 sources of 5-6 clips


@pytest.mark.data
@pytest.mark.skipif(not FIGHTS.is_dir(), reason=f"fight clips not found at {FIGHTS}")
def test_real_clips_are_listed_with_their_source_and_label():
    clips = fights.find_clips(eval_data_dir())
    assert len(clips) == 150
    assert sum(c.fight for c in clips) == 75
    assert len({c.source for c in clips}) == 22


@pytest.mark.data
@pytest.mark.skipif(not FIGHTS.is_dir(), reason=f"fight clips not found at {FIGHTS}")
def test_one_real_clip_through_the_unit_and_replayed(tmp_path):
    """The unit on a real clip writes the events file `vigil run --events-out` would, and the
    cached tracks replayed through the rule engine give the same fight verdict."""
    from firmware.commands.run import DEMO_CONFIG
    from firmware.config import load

    clip = next(c for c in fights.find_clips(eval_data_dir()) if c.name == "noFight/nofi005.mp4")
    out = fights.run_clip(clip, tmp_path, None, pose=False)
    stem = tmp_path / "noFight__nofi005"
    events = [json.loads(x) for x in stem.with_suffix(".events.jsonl").read_text().splitlines()]
    assert events == out["events"] and out["fps"] > 0
    fps, size, rows = fights.load_tracks(stem.with_suffix(".tracks.npz"))
    assert len(rows) > 30 and size == out["size"]
    assert any(len(r["ids"]) for r in rows)  # people were tracked
    replayed = fights.replay_clip(stem.with_suffix(".tracks.npz"), load(DEMO_CONFIG).config)
    assert fights.flagged(replayed) == fights.flagged(events)
    # re-tracking the cached person detections with the same tracker: the same verdict
    retracked = fights.replay_clip(stem.with_suffix(".tracks.npz"), load(DEMO_CONFIG).config, True)
    assert fights.flagged(retracked) == fights.flagged(events)
