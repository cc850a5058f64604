"""The MOT metrics harness: oracle values, TrackEval agreement, hand-computed HOTA, file parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware.paths import eval_data_dir
from tools.eval.mot import evaluate, hota, prepare, read_mot, read_seqinfo

pytest.importorskip("motmetrics", reason="py-motmetrics not installed (eval extra)")

ORACLE_COLUMNS = {
    "IDF1": "idf1", "IDP": "idp", "IDR": "idr", "Recall": "recall", "Precision": "precision",
    "GT": "num_unique_objects", "MT": "mostly_tracked", "PT": "partially_tracked",
    "ML": "mostly_lost", "FP": "num_false_positives", "FN": "num_misses",
    "IDsw": "num_switches", "FM": "num_fragmentations", "MOTA": "mota", "MOTP": "motp",
}  # fmt: skip


@pytest.fixture(scope="module")
def oracle() -> Path:
    d = eval_data_dir() / "motmetrics-oracle"
    if not (d / "EXPECTED.txt").is_file():
        pytest.skip(f"motmetrics oracle not found at {d} (set VIGIL_EVAL_DATA)")
    return d


def _oracle_results(oracle: Path) -> dict:
    seq = oracle / "TUD-Campus"
    gt, res = read_mot(seq / "gt.txt").rows, read_mot(seq / "test.txt").rows
    return evaluate({"TUD-Campus": (gt, res, None)})


def test_reproduces_motmetrics_oracle(oracle: Path):
    lines = [ln for ln in (oracle / "EXPECTED.txt").read_text().splitlines() if ln.strip()]
    header = []
    for token in next(ln for ln in lines if ln.startswith("Columns:")).split(":", 1)[1].split():
        header.append(token.split("(")[0])
        if "(" in token:
            break  # the rest is a remark on the last column
    values = next(ln for ln in lines if ln.startswith("TUD-Campus")).split()[1:]
    expected = dict(zip(header, map(float, values), strict=True))
    got = _oracle_results(oracle)["TUD-Campus"]["_row"]
    assert set(expected) <= set(ORACLE_COLUMNS)
    for name, value in expected.items():
        assert float(got[ORACLE_COLUMNS[name]]) == pytest.approx(value, abs=1e-3), name


def test_hota_matches_trackeval_reference_on_oracle(oracle: Path):
    """Values TrackEval 1.3.0 (MotChallenge2DBox, BENCHMARK=MOT15) gives for the same files."""
    r = _oracle_results(oracle)["TUD-Campus"]
    assert r["HOTA"] == pytest.approx(0.391397, abs=1e-5)
    assert r["DetA"] == pytest.approx(0.418047, abs=1e-5)
    assert r["AssA"] == pytest.approx(0.369121, abs=1e-5)


def _rows(frames_ids_boxes):
    return np.array([[f, i, *b, 1, -1, -1, -1] for f, i, b in frames_ids_boxes], float)


def test_hota_hand_computed_id_switch():
    """One person, 4 frames, perfect boxes, the tracker switches id halfway: DetA 1, AssA 0.5."""
    box = (10, 10, 20, 40)
    gt = _rows([(f, 1, box) for f in range(1, 5)])
    res = _rows([(f, 7 if f <= 2 else 9, box) for f in range(1, 5)])
    h = hota(prepare(gt, res))
    np.testing.assert_allclose(h["DetA"], 1.0)
    np.testing.assert_allclose(h["AssA"], 0.5)
    np.testing.assert_allclose(h["HOTA"], np.sqrt(0.5))
    perfect = hota(prepare(gt, _rows([(f, 3, box) for f in range(1, 5)])))
    np.testing.assert_allclose(perfect["HOTA"], 1.0)


def test_hota_localisation_thresholds_and_empty_output():
    """A box at IoU 0.5 counts for the alphas up to 0.5 only; no output scores 0."""
    gt = _rows([(1, 1, (0, 0, 10, 10))])
    res = _rows([(1, 1, (0, 0, 10, 5))])  # IoU 0.5
    h = hota(prepare(gt, res))
    assert h["HOTA_TP"].tolist() == [1.0] * 10 + [0.0] * 9
    empty = hota(prepare(gt, np.zeros((0, 10))))
    assert empty["HOTA"].max() == 0 and empty["HOTA_FN"].min() == 1


def test_zero_confidence_ground_truth_is_ignored():
    gt = _rows([(1, 1, (0, 0, 10, 10)), (1, 2, (50, 50, 10, 10))])
    gt[1, 6] = 0  # marked not to be evaluated
    res = _rows([(1, 4, (0, 0, 10, 10))])
    r = evaluate({"s": (gt, res, 1)})["s"]
    assert r["HOTA"] == pytest.approx(1.0) and r["MOTA"] == pytest.approx(1.0)


def test_repeated_id_in_a_frame_is_refused():
    res = _rows([(1, 4, (0, 0, 10, 10)), (1, 4, (20, 0, 10, 10))])
    with pytest.raises(ValueError, match="repeats an id within frame 1"):
        prepare(res, res)


def test_read_mot_skips_and_counts_bad_lines(tmp_path: Path):
    p = tmp_path / "det.txt"
    p.write_text(
        "\n".join(
            [
                "1,-1,10,10,20,40,0.9,-1,-1,-1",
                "1,-1,10,10,20",  # too few fields
                "2,-1,ten,10,20,40,0.9",  # not a number
                "2,-1,10,10,0,40,0.9",  # zero width
                "2,-1,10,10,20,-4,0.9",  # negative height
                "3,-1,10,10,20,40,nan",  # NaN score
                "0,-1,10,10,20,40,0.9",  # frame 0
                "",
                "# comment",
                "4 -1 10 10 20 40 0.8",  # whitespace-separated is fine
                "9,-1,10,10,20,40,0.9",  # past max_frame
            ]
        )
    )
    f = read_mot(p, max_frame=5)
    assert f.rows.shape == (2, 10) and f.lines == 9 and f.n_skipped == 7
    assert f.skipped["box of zero or negative size"] == [4, 5]
    assert f.skipped["NaN or infinite value"] == [6]
    assert "2 box of zero or negative size (line 4, 5)" in f.skip_summary()


def test_read_seqinfo_errors(tmp_path: Path):
    p = tmp_path / "seqinfo.ini"
    with pytest.raises(FileNotFoundError):
        read_seqinfo(p)
    p.write_text("[Sequence]\nname=x\nseqLength=10\n")
    with pytest.raises(ValueError, match="no frameRate"):
        read_seqinfo(p)
    p.write_text("[Sequence]\nframeRate=0\n")
    with pytest.raises(ValueError, match="positive"):
        read_seqinfo(p)
    p.write_text("[Sequence]\nframeRate=25\nseqLength=71\n")
    assert read_seqinfo(p)["frameRate"] == 25.0 and read_seqinfo(p)["seqLength"] == 71
