"""`vigil-eval mtmc` (the contract: --cameras, --tracks VIEW=FILE, --out) and its scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tools.eval.cli import main as eval_main
from tools.eval.mot import read_mot
from tools.eval.mtmc import fuse_none, load_cameras, score_groups
from tools.eval.run_track import detections_by_frame, track_sequence, write_results

IDENT = [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]


def _cameras(tmp_path: Path, views: dict, **extra) -> Path:
    doc = {"frame_rate": 5, "ground_unit_m": 0.01, "views": views, **extra}
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps(doc))
    return path


def _write(path: Path, rows: list[tuple]) -> Path:
    path.write_text("".join(f"{f},{i},{x},{y},{w},{h},1,-1,-1,-1\n" for f, i, x, y, w, h in rows))
    return path


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"views": {"a": {"image_size": [10, 10], "homography": IDENT}}}, "frame_rate must be"),
        ({"frame_rate": 5, "views": {}}, "views must be a non-empty object"),
        (
            {"frame_rate": 5, "views": {"v2": {"image_size": [10, 10], "homography": [[1, 2]]}}},
            "views.v2.homography must be a finite 3x3",
        ),
        (
            {
                "frame_rate": 5,
                "views": {"v2": {"image_size": [10, 10], "homography": [[1, 1, 0]] * 3}},
            },
            "views.v2.homography is singular",
        ),
        (
            {"frame_rate": 5, "views": {"v1": {"image_size": [10], "homography": None}}},
            "v1.image_size",
        ),
    ],
)
def test_bad_cameras_file_is_refused_naming_the_key(tmp_path: Path, doc: dict, message: str):
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        load_cameras(path)


def test_ground_truth_scores_perfect_and_per_view_ids_are_penalised():
    gt = {
        "a": np.array([[f, 1, 10, 10, 20, 40, 1, -1, -1, -1] for f in range(1, 21)], float),
        "b": np.array([[f, 1, 50, 10, 20, 40, 1, -1, -1, -1] for f in range(1, 21)], float),
    }
    perfect = score_groups({"g": (gt, gt)})["g"]
    assert perfect["IDF1"] == pytest.approx(1.0) and perfect["XV"] == 1.0
    assert perfect["HOTA"] > 0.99
    apart = score_groups({"g": (gt, fuse_none(gt))})["g"]
    assert apart["XV"] == 0.0
    assert apart["IDF1"] == pytest.approx(0.5)  # half the frames carry the wrong global id
    assert apart["MOTA"] == pytest.approx(1 - 1 / 40)  # one id switch where view b starts


def test_cli_gives_one_global_id_across_views_and_keeps_uncalibrated_views_apart(tmp_path: Path):
    # a person walks on the floor: view a has the identity homography (pixels = 0.01 m units),
    # view b sees them shifted by 500 px, with the homography undoing it; view n is uncalibrated
    shift = [[1.0, 0, -500], [0, 1.0, 0], [0, 0, 1.0]]
    cams = _cameras(
        tmp_path,
        {
            "a": {"image_size": [2000, 1000], "homography": IDENT},
            "b": {"image_size": [2000, 1000], "homography": shift},
            "n": {"image_size": [2000, 1000], "homography": None},
        },
    )
    a = _write(tmp_path / "a.txt", [(f, 4, 100 + 20 * f, 300, 40, 100) for f in range(1, 31)])
    b = _write(tmp_path / "b.txt", [(f, 9, 610 + 20 * f, 310, 40, 100) for f in range(1, 31)])
    n = _write(tmp_path / "n.txt", [(f, 4, 50, 50, 40, 100) for f in range(1, 31)])
    out = tmp_path / "out"
    argv = ["mtmc", "--cameras", str(cams), "--tracks", f"a={a}", f"b={b}", f"n={n}"]
    assert eval_main([*argv, "--out", str(out)]) == 0
    ra, rb, rn = (read_mot(out / f"{v}.txt").rows for v in "abn")
    assert ra.shape[0] == rb.shape[0] == 30
    assert set(ra[:, 1]) == set(rb[:, 1]) and len(set(ra[:, 1])) == 1
    assert not set(rn[:, 1]) & set(ra[:, 1])
    np.testing.assert_allclose(ra[:, 2:6], read_mot(a).rows[:, 2:6])


def test_cli_refuses_bad_input(tmp_path: Path, capsys):
    cams = _cameras(tmp_path, {"a": {"image_size": [100, 100], "homography": IDENT}})
    a = _write(tmp_path / "a.txt", [(1, 1, 1, 1, 4, 4)])
    out = tmp_path / "out"
    assert eval_main(["mtmc", "--cameras", str(cams), "--tracks", f"z={a}", "--out", str(out)]) == 2
    assert "no view 'z' in the cameras file" in capsys.readouterr().err
    assert eval_main(["mtmc", "--cameras", str(cams), "--tracks", str(a), "--out", str(out)]) == 2
    assert "expected VIEW=FILE" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,1,1,4,4,1,-1,-1,-1\nx,y\n")
    assert (
        eval_main(["mtmc", "--cameras", str(cams), "--tracks", f"a={bad}", "--out", str(out)]) == 2
    )
    assert "bad.txt: 1 bad lines" in capsys.readouterr().err
    assert not out.exists()


def test_dev_group_slice_fusion_beats_per_view_ids(eval_data: Path, tmp_path: Path, capsys):
    group = eval_data / "multicam" / "epfl_laboratory"
    if not group.is_dir():
        pytest.skip("multicam data not present")
    n = 500
    tracks, gts = [], []
    for v in ("v1", "v2", "v4"):
        det = read_mot(group / v / "det" / "det.txt").rows
        rows = track_sequence(detections_by_frame(det[det[:, 0] <= n], n), 25.0)
        write_results(tmp_path / f"{v}.txt", rows)
        gt = read_mot(group / v / "gt" / "gt.txt").rows
        _write(tmp_path / f"gt-{v}.txt", [tuple(r[:6]) for r in gt[gt[:, 0] <= n]])
        tracks.append(f"{v}={tmp_path / f'{v}.txt'}")
        gts.append(f"{v}={tmp_path / f'gt-{v}.txt'}")
    out = tmp_path / "out"
    argv = ["mtmc", "--cameras", str(group / "cameras.json"), "--tracks", *tracks]
    assert eval_main([*argv, "--out", str(out), "--gt", *gts]) == 0
    text = capsys.readouterr().out
    idf1 = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line in ("fusion", "anchor", "no fusion"):
            idf1[line] = float(lines[i + 2].split()[5])
    assert idf1["fusion"] > idf1["no fusion"] + 10
    assert {f"{v}.txt" for v in ("v1", "v2", "v4")} == {p.name for p in out.iterdir()}


def test_anchor_joins_views_of_one_person_and_keeps_two_people_apart():
    # identity homographies in 0.01 m units: person 1 in views a and b 0.3 m apart, person 2
    # 2 m away in view a only; the anchor gives person 1 one id in both views, person 2 another
    from tools.eval.mtmc import Camera, Cameras, fuse_anchor

    h = np.diag([0.01, 0.01, 1.0])
    cams = Cameras(5.0, {v: Camera(v, (2000, 1000), h) for v in "ab"})
    row = lambda f, i, x: [f, i, x - 20, 200, 40, 100, 1, -1, -1, -1]  # noqa: E731
    a = np.array(
        [row(f, 1, 100 + 10 * f) for f in range(1, 21)]
        + [row(f, 2, 300 + 10 * f) for f in range(1, 21)],
        float,
    )
    b = np.array([row(f, 5, 130 + 10 * f) for f in range(1, 21)], float)
    out = fuse_anchor(cams, {"a": a, "b": b})
    p1 = set(out["a"][a[:, 1] == 1, 1]) | set(out["b"][:, 1])
    p2 = set(out["a"][a[:, 1] == 2, 1])
    assert len(p1) == 1 and len(p2) == 1 and not p1 & p2, (p1, p2)
