"""`vigil-eval behave` on tracks files (contract, bad input) and the CAVIAR scorer."""

from __future__ import annotations

import json

import pytest

from firmware.paths import eval_data_dir
from tools.eval import caviar
from tools.eval.cli import main

REQUIRED = {"type", "start_frame", "end_frame", "track_ids", "zone", "explanation"}


def write_run(path, fps=25, height=100):
    """A person walking, then sprinting at 3 heights/s, as MOT rows from frame 1."""
    rows, x = [], 50.0
    for f in range(1, 101):
        x += (1.0 if f <= 40 else 3.0) * height / fps
        rows.append(f"{f},7,{x - 20:.1f},300,40,{height},0.9,1")
    path.write_text("\n".join(rows) + "\n")


def test_behave_writes_one_json_object_per_event(tmp_path, capsys):
    tracks, out = tmp_path / "t.txt", tmp_path / "ev.jsonl"
    write_run(tracks)
    rc = main(
        ["behave", "--tracks", str(tracks), "--fps", "25", "--size", "1280x720", "--out", str(out)]
    )
    assert rc == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["type"] for e in events] == ["running"]
    ev = events[0]
    assert ev.keys() >= REQUIRED
    assert ev["track_ids"] == [7] and ev["zone"] is None
    assert 41 <= ev["start_frame"] <= 60 and ev["end_frame"] == 100  # file frame numbers
    assert ev["explanation"]["min_speed"] == 2.5


def test_behave_with_a_site_uses_its_zones_and_thresholds(tmp_path):
    tracks, out, site = tmp_path / "t.txt", tmp_path / "ev.jsonl", tmp_path / "site.toml"
    tracks.write_text("".join(f"{f},3,100,100,40,100,1,1\n" for f in range(1, 301)))  # 12 s still
    site.write_text(
        '[[zones]]\nname = "shelf"\npurpose = "high_value"\npolygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]\n'
        "[rules.loitering]\nthreshold_s = 10\nwarn_s = 20\nalert_s = 30\n"
    )
    rc = main(
        [
            "behave",
            "--tracks",
            str(tracks),
            "--site",
            str(site),
            "--size",
            "640x480",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    loiter = [e for e in events if e["type"] == "loitering"]
    assert len(loiter) == 1 and loiter[0]["zone"] == "shelf"
    assert loiter[0]["start_frame"] == 251  # 10 s after frame 1
    assert loiter[0]["explanation"]["threshold_s"] == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3,4,5,6,1\n", "t.txt:1: expected 8 comma-separated fields"),
        ("1,2,3,4,5,6,1,1\n2,2,x,4,5,6,1,1\n", "t.txt:2: a field is not a number"),
        ("0,2,3,4,5,6,1,1\n", "t.txt:1: frame 0: frames count from 1"),
        ("1,2,3,4,-5,6,1,1\n", "t.txt:1: box width and height must be positive"),
        (
            "1,2,3,4,5,6,1,1\n1,2,3,4,5,6,1,1\n",
            "t.txt:2: track 2 appears twice in frame 1 (first on line 1)",
        ),
        ("1,2,3,4,5,6,1,1.5\n", "t.txt:1: frame, id and class must be whole numbers"),
        ("1,2,3,4,5,6,1,200\n", "t.txt:1: class 200 is not a COCO category id"),
        ("", "no tracks in the file"),
    ],
)
def test_bad_tracks_files_give_a_clear_error(tmp_path, capsys, text, message):
    tracks = tmp_path / "t.txt"
    tracks.write_text(text)
    rc = main(["behave", "--tracks", str(tracks), "--out", str(tmp_path / "o.jsonl")])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "o.jsonl").exists()


def test_max_gap_refuses_long_empty_stretches_only_when_asked(tmp_path, capsys):
    tracks = tmp_path / "t.txt"
    tracks.write_text("1,2,3,4,5,6,1,1\n900,2,3,4,5,6,1,1\n")
    out = tmp_path / "o.jsonl"
    assert main(["behave", "--tracks", str(tracks), "--out", str(out), "--max-gap", "250"]) == 2
    assert "gap of 898 frames with no tracks between frames 1 and 900" in capsys.readouterr().err
    assert not out.exists()
    assert main(["behave", "--tracks", str(tracks), "--out", str(out), "--max-gap", "898"]) == 0


def test_bad_site_and_arguments(tmp_path, capsys):
    tracks = tmp_path / "t.txt"
    write_run(tracks)
    site = tmp_path / "site.toml"
    site.write_text("[rules.runing]\nmin_speed = 2\n")
    assert main(["behave", "--tracks", str(tracks), "--site", str(site)]) == 2
    assert "rules.runing: Extra inputs are not permitted" in capsys.readouterr().err
    assert main(["behave", "--tracks", str(tmp_path / "missing.txt")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["behave", "--tracks", str(tracks), "--size", "big"]) == 2
    assert "expected WxH" in capsys.readouterr().err


def test_scoring_matches_within_50_frames_and_counts_false_alarms():
    labels = [
        caviar.Interval("fight", 100, 200, (1, 2)),
        caviar.Interval("running", 500, 520, (3,)),
    ]
    events = [
        {"type": "fight", "start_frame": 240, "end_frame": 300},  # 40 frames after: a match
        {"type": "running", "start_frame": 580, "end_frame": 600},  # 60 frames after: no
        {"type": "fall", "start_frame": 10, "end_frame": 20},
    ]
    s = caviar.score(labels, events)
    assert s["fight"] == {"labelled": 1, "found": 1, "predicted": 1, "false_alarms": 0}
    assert s["running"] == {"labelled": 1, "found": 0, "predicted": 1, "false_alarms": 1}
    assert s["fall"] == {"labelled": 0, "found": 0, "predicted": 1, "false_alarms": 1}


CAVIAR = eval_data_dir() / "caviar" / "inria" / "gt"


@pytest.mark.data
@pytest.mark.skipif(
    not CAVIAR.is_dir(), reason=f"CAVIAR not found at {CAVIAR} (set VIGIL_EVAL_DATA)"
)
def test_caviar_labels_are_read_as_specified():
    seq = caviar.parse_xml(CAVIAR / "Resting" / "Rest_FallOnFloor" / "rffgt.xml")
    assert [(i.type, i.start, i.end) for i in seq.labels] == [("fall", 656, 950)]
    bag = caviar.parse_xml(CAVIAR / "Leaving" / "LeftBag" / "lb1gt.xml")
    assert [(i.type, i.ids) for i in bag.labels] == [("left_object", (4,))]
    assert {r[7] for r in bag.rows if r[1] == 4} == {33}  # the left object is a suitcase


@pytest.mark.data
@pytest.mark.skipif(
    not CAVIAR.is_dir(), reason=f"CAVIAR not found at {CAVIAR} (set VIGIL_EVAL_DATA)"
)
def test_caviar_targets(tmp_path):
    """The issue's targets on the 14 INRIA sequences (about 5 s)."""
    result = caviar.evaluate(eval_data_dir(), tmp_path)
    t = result["totals"]
    assert len(result["sequences"]) == 14
    for kind in ("fight", "fall", "left_object"):
        assert t[kind]["found"] == t[kind]["labelled"] > 0, (kind, t[kind])
    assert t["running"]["found"] >= 3 and t["running"]["labelled"] == 4
    assert sum(v["false_alarms"] for v in t.values()) <= 3, t


@pytest.mark.data
@pytest.mark.skipif(
    not CAVIAR.is_dir(), reason=f"CAVIAR not found at {CAVIAR} (set VIGIL_EVAL_DATA)"
)
def test_real_tracks_with_a_long_empty_stretch_are_replayed_with_a_warning(tmp_path, capsys):
    """A real ground-truth file with an empty shop of 64 s inserted: accepted by default, a
    warning names the stretch, and the events after it are those of the original, shifted."""
    seq = caviar.parse_xml(CAVIAR / "Fighting" / "Fight_RunAway1" / "fra1gt.xml")
    orig = tmp_path / "orig.txt"
    caviar.write_tracks(seq, orig)
    rows = [line.split(",") for line in orig.read_text().splitlines()]
    first = min(int(r[0]) for r in rows)
    cut, shift = first + 5, 1600  # someone seen, then nobody for 64 s at 25 fps
    gapped = tmp_path / "gapped.txt"
    gapped.write_text(
        "".join(
            ",".join([str(int(r[0]) + shift) if int(r[0]) > cut else r[0], *r[1:]]) + "\n"
            for r in rows
            if int(r[0]) <= cut or int(r[0]) > cut + 10
        )
    )
    outs = {}
    for name, path in (("orig", orig), ("gapped", gapped)):
        outs[name] = tmp_path / f"{name}.jsonl"
        rc = main(["behave", "--tracks", str(path), "--size", "384x288", "--out", str(outs[name])])
        assert rc == 0
    err = capsys.readouterr().err
    assert f"warning: {gapped}: no tracks for {shift + 10} frames" in err, err
    assert f"between frames {cut} and {cut + shift + 11}" in err
    assert str(orig) not in err  # the original has no stretch over 60 s

    def kinds(path, offset):
        evs = [json.loads(line) for line in path.read_text().splitlines()]
        return sorted(
            (e["type"], e["start_frame"] - offset)
            for e in evs
            if e["start_frame"] > cut + 60 + offset
        )

    assert kinds(outs["orig"], 0)  # the fight and the runners
    assert kinds(outs["gapped"], shift) == kinds(outs["orig"], 0)


@pytest.mark.data
@pytest.mark.skipif(
    not CAVIAR.is_dir(), reason=f"CAVIAR not found at {CAVIAR} (set VIGIL_EVAL_DATA)"
)
def test_caviar_leave_one_out_chooses_on_the_other_sequences(tmp_path, monkeypatch):
    """With a running threshold that flags every walker on offer next to the default, each
    held-out sequence gets the default (chosen on the other 13) and keeps its runners."""
    monkeypatch.setattr(caviar, "LOO_GRID", {"running": ("running", "min_speed", (2.5, 0.8))})
    loo = caviar.leave_one_out(eval_data_dir(), tmp_path)
    assert {c["running"] for c in loo["chosen"].values()} == {2.5}
    assert loo["totals"]["running"]["found"] == 4
    assert loo["totals"]["fight"]["labelled"] == 0  # types outside the grid are not scored
