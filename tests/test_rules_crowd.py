"""A crowd meeting in a lobby, built from real track shapes: no fight, no running.

CAVIAR's Meet_WalkSplit (two people meet, walk together, split) with each person's track
copied three more times, shifted by half a person's width or so, gives eight people walking
close together: a crowd, not a fight. Without ``rules.fight.crowd_others`` the box-only
fight rule reads the group's jostling boxes as agitation (1.32 sizes/s against 1.37-1.42 in
CAVIAR's real fights), and the runners' lower limit after a fight then turns walkers into
runners, as on the held-out crowded meeting scene of issue 16.
"""

from __future__ import annotations

import pytest

from firmware.config import default
from firmware.paths import eval_data_dir
from tools.eval import caviar, run_behave

MEET = eval_data_dir() / "caviar" / "inria" / "gt" / "Meeting" / "Meet_WalkSplit"
OFFSETS = [(0, 0), (25, 5), (-20, 10), (10, -15)]  # px; CAVIAR people are about 30x70 px


def crowd_tracks(path, offsets):
    seq = caviar.parse_xml(next(MEET.glob("*.xml")))
    out = []
    for k, (dx, dy) in enumerate(offsets):
        for f, i, x, y, w, h, _, cls in seq.rows:
            nx, ny = x + dx, y + dy
            if cls == 1 and nx >= 1 and ny >= 1 and nx + w <= 383 and ny + h <= 287:
                out.append(f"{f},{i + 1000 * k},{nx:.1f},{ny:.1f},{w:.1f},{h:.1f},1,1")
    path.write_text("\n".join(out) + "\n")


def alarms(path, crowd_others=None):
    cfg = default().config
    if crowd_others is not None:
        fight = cfg.rules.fight.model_copy(update={"crowd_others": crowd_others})
        cfg = cfg.model_copy(update={"rules": cfg.rules.model_copy(update={"fight": fight})})
    events = run_behave.behave(path, cfg, 25.0, (384, 288))
    return [(e["type"], e["start_frame"]) for e in events if e["type"] in ("fight", "running")]


@pytest.mark.data
@pytest.mark.skipif(not MEET.is_dir(), reason=f"CAVIAR not found at {MEET}")
def test_the_meeting_itself_is_quiet(tmp_path):
    crowd_tracks(tmp_path / "t.txt", OFFSETS[:1])
    assert alarms(tmp_path / "t.txt") == []


@pytest.mark.data
@pytest.mark.skipif(not MEET.is_dir(), reason=f"CAVIAR not found at {MEET}")
def test_a_crowd_meeting_in_a_lobby_is_not_a_fight_nor_running(tmp_path):
    crowd_tracks(tmp_path / "t.txt", OFFSETS)
    assert alarms(tmp_path / "t.txt") == []
    # the same scene without the crowd test: the false fight and the runners it causes
    kinds = {k for k, _ in alarms(tmp_path / "t.txt", crowd_others=0)}
    assert kinds == {"fight", "running"}
