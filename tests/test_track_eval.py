"""`vigil-eval track`: the contract (files in, MOT results out) and bad input handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware.paths import eval_data_dir
from tools.eval.cli import main as eval_main
from tools.eval.mot import read_mot

SEQINFO = "[Sequence]\nname=synth\nframeRate=10\nseqLength={n}\nimWidth=640\nimHeight=480\n"


def _write_scene(tmp_path: Path, n: int = 30) -> tuple[Path, Path]:
    """Two people walking in opposite directions, one detection line each per frame."""
    lines = []
    for f in range(1, n + 1):
        lines.append(f"{f},-1,{50 + 5 * f:.1f},100,40,100,0.95,-1,-1,-1")
        lines.append(f"{f},-1,{500 - 5 * f:.1f},300,40,100,0.9,-1,-1,-1")
    det = tmp_path / "det.txt"
    det.write_text("\n".join(lines) + "\n")
    info = tmp_path / "seqinfo.ini"
    info.write_text(SEQINFO.format(n=n))
    return det, info


def test_writes_mot_results_with_stable_ids(tmp_path: Path, capsys):
    det, info = _write_scene(tmp_path)
    out = tmp_path / "res" / "synth.txt"
    assert eval_main(["track", "--det", str(det), "--seqinfo", str(info), "--out", str(out)]) == 0
    text = out.read_text().splitlines()
    assert all(ln.endswith(",1,-1,-1,-1") and len(ln.split(",")) == 10 for ln in text)
    rows = read_mot(out).rows
    assert set(np.unique(rows[:, 1]).tolist()) == {1, 2}  # two people, two ids, no switch
    assert rows.shape[0] >= 2 * 30 - 2  # every frame but the unconfirmed start
    first = rows[rows[:, 1] == 1]
    assert np.all(np.diff(first[:, 2]) > 0)  # id 1 is the one walking right
    np.testing.assert_allclose(first[-1, 2:6], [50 + 5 * 30, 100, 40, 100], atol=1.0)
    assert "30 frames at 10 fps" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty detection file"),
        ("\n# only a comment\n", "empty detection file"),
        ("1,-1,1,2\nnot,a,detection,line,at,all\n", "no usable detection"),
        ("1,-1,10,10,0,40,0.9\n1,-1,10,10,20,40,nan\n", "no usable detection"),
    ],
)
def test_unusable_detection_files_are_refused(tmp_path: Path, capsys, content, message):
    _, info = _write_scene(tmp_path)
    det = tmp_path / "bad.txt"
    det.write_text(content)
    out = tmp_path / "out.txt"
    assert eval_main(["track", "--det", str(det), "--seqinfo", str(info), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bad_lines_are_skipped_and_counted_or_refused_with_strict(tmp_path: Path, capsys):
    det, info = _write_scene(tmp_path)
    with open(det, "a") as f:
        f.write("5,-1,10,10,-3,40,0.9\n5,-1,10,10\n6,-1,10,10,20,40,nan\n99,-1,1,1,5,5,0.9\n")
    out = tmp_path / "out.txt"
    args = ["track", "--det", str(det), "--seqinfo", str(info), "--out", str(out)]
    assert eval_main(args) == 0
    err = capsys.readouterr().err
    assert "skipped 4 of 64 lines" in err
    assert "1 box of zero or negative size (line 61)" in err
    assert "1 frame past the sequence length" in err
    assert set(np.unique(read_mot(out).rows[:, 1]).tolist()) == {1, 2}
    out.unlink()
    assert eval_main([*args, "--strict"]) == 2
    assert "skipped 4 of 64 lines" in capsys.readouterr().err and not out.exists()


def test_missing_inputs_give_one_line_errors(tmp_path: Path, capsys):
    det, info = _write_scene(tmp_path)
    out = str(tmp_path / "o.txt")
    assert (
        eval_main(
            ["track", "--det", str(tmp_path / "nope.txt"), "--seqinfo", str(info), "--out", out]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    info.write_text("[Sequence]\nseqLength=5\n")
    assert eval_main(["track", "--det", str(det), "--seqinfo", str(info), "--out", out]) == 2
    assert "no frameRate" in capsys.readouterr().err


def test_real_sequence_scores_like_a_tracker(tmp_path: Path):
    """TUD-Campus with the published detections: the harness and the tracker together."""
    pytest.importorskip("motmetrics", reason="py-motmetrics not installed (eval extra)")
    from tools.eval.mot import evaluate

    seq = eval_data_dir() / "mot15" / "TUD-Campus"
    if not (seq / "det" / "det.txt").is_file():
        pytest.skip(f"MOT15 data not found at {seq} (set VIGIL_EVAL_DATA)")
    out = tmp_path / "TUD-Campus.txt"
    args = ["track", "--det", str(seq / "det" / "det.txt"), "--seqinfo", str(seq / "seqinfo.ini")]
    assert eval_main([*args, "--out", str(out)]) == 0
    r = evaluate({"t": (read_mot(seq / "gt" / "gt.txt").rows, read_mot(out).rows, 71)})["t"]
    # SORT's published detections give about 0.45-0.52 HOTA here for ByteTrack-like trackers.
    assert r["HOTA"] > 0.45 and r["IDF1"] > 0.6 and r["IDsw"] <= 10


def test_scores_outside_unit_range_are_refused_or_rescaled(tmp_path: Path, capsys):
    det, info = _write_scene(tmp_path)
    text = det.read_text().replace(",0.95,", ",95.0,").replace(",0.9,", ",-0.3,")
    det.write_text(text)
    out = tmp_path / "out.txt"
    args = ["track", "--det", str(det), "--seqinfo", str(info), "--out", str(out)]
    assert eval_main(args) == 2
    assert "scores range from -0.3 to 95" in capsys.readouterr().err and not out.exists()
    assert eval_main([*args, "--rescale-scores"]) == 0
    assert np.unique(read_mot(out).rows[:, 1]).size >= 1
