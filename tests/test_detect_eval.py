"""`vigil-eval detect` output contract and the person-AP harness (tools/eval/detect.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from firmware.paths import eval_data_dir
from tools.eval.cli import main as eval_main
from tools.eval.detect import _add_box, _empty_gt, person_metrics

COCO = eval_data_dir() / "coco128"
needs_coco = pytest.mark.skipif(not COCO.is_dir(), reason=f"evaluation data absent: {COCO}")


def _gt() -> dict:
    gt = _empty_gt()
    for iid in ("a", "b"):
        gt["images"].append({"id": iid, "width": 200, "height": 100})
    _add_box(gt, "a", 10, 10, 30, 60)
    _add_box(gt, "b", 100, 20, 40, 70)
    return gt


def _det(iid: str, bbox: list[float], score: float, cat: int = 1) -> dict:
    return {"image_id": iid, "category_id": cat, "bbox": bbox, "score": score}


def test_metrics_perfect_partial_and_empty():
    gt = _gt()
    perfect = [_det("a", [10, 10, 30, 60], 0.9), _det("b", [100, 20, 40, 70], 0.8)]
    m = person_metrics(gt, perfect, 0.35)
    assert m["AP50"] == pytest.approx(1.0) and m["AP50_95"] == pytest.approx(1.0)
    assert m["precision"] == 1.0 and m["recall"] == 1.0
    # one person missed, one false positive ranked first; backpacks are not people
    partial = [_det("a", [150, 0, 20, 20], 0.95), _det("a", [12, 12, 30, 60], 0.5),
               _det("b", [100, 20, 40, 70], 0.99, cat=27)]  # fmt: skip
    m = person_metrics(gt, partial, 0.35)
    assert 0.2 < m["AP50"] < 0.6
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    assert person_metrics(gt, [], 0.35)["AP50"] == 0.0


@needs_coco
@pytest.mark.data
def test_vigil_eval_detect_writes_coco_results(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for stem in ("000000000036", "000000000061"):
        shutil.copy(COCO / "images" / "train2017" / f"{stem}.jpg", imgs)
    out = tmp_path / "dets.json"
    assert eval_main(["detect", "--images", str(imgs), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {r["image_id"] for r in res} == {"000000000036", "000000000061"}
    for r in res:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["score"] >= 0.05 and r["category_id"] in (1, 27, 31, 33)
        x, y, w, h = r["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
    assert any(r["category_id"] == 1 and r["score"] > 0.5 for r in res)


def test_vigil_eval_detect_bad_folder_is_one_line_error(tmp_path, capsys):
    assert (
        eval_main(["detect", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o.json")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("vigil-eval detect: error:") and "does not exist" in err
    assert len(err.splitlines()) == 1


def test_camera_groups_by_folder_and_size(tmp_path):
    import cv2
    import numpy as np

    from tools.eval.run_detect import camera_groups, image_files

    for name, shape in [("a/1", (288, 384)), ("a/2", (288, 384)), ("a/3", (480, 640)),
                        ("b/1", (288, 384)), ("4", (288, 384))]:  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((*shape, 3), np.uint8))
    groups = camera_groups(image_files(tmp_path))
    names = sorted(sorted(f.relative_to(tmp_path).as_posix() for f in g) for g in groups)
    assert names == [["4.png"], ["a/1.png", "a/2.png"], ["a/3.png"], ["b/1.png"]]
