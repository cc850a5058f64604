"""Face locator: the real BlazeFace models from the mediapipe wheel, via LiteRT."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from firmware.detect import ModelError, load_face_detector, read_manifest
from firmware.detect.face import ssd_anchors
from firmware.paths import MODELS_DIR, eval_data_dir

IMG = eval_data_dir() / "coco128" / "images" / "train2017" / "000000000036.jpg"
needs_img = pytest.mark.skipif(not IMG.exists(), reason=f"evaluation data absent: {IMG}")


def test_anchor_counts_match_the_models():
    assert len(ssd_anchors(128, [8, 16, 16, 16], 2)) == 896
    assert len(ssd_anchors(192, [4], 1)) == 2304
    a = ssd_anchors(128, [8, 16, 16, 16], 2)
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])


@needs_img
@pytest.mark.data
@pytest.mark.parametrize("name", ["blazeface-full", "blazeface-short"])
def test_face_found_in_the_head_of_the_person(name):
    img = cv2.imread(str(IMG))  # one woman, face roughly at x 220-300, y 200-290
    face = load_face_detector(name, MODELS_DIR)
    boxes, scores = face.detect(img)
    assert boxes.shape == (1, 4) and scores.shape == (1,)
    x1, y1, x2, y2 = boxes[0]
    assert 200 < (x1 + x2) / 2 < 320 and 190 < (y1 + y2) / 2 < 300
    assert 40 < x2 - x1 < 140
    # Looking only inside the person's box finds the same face, in frame coordinates.
    b2, _ = face.detect(img, regions=np.array([[150, 150, 480, 450]]))
    assert len(b2) == 1 and np.abs(b2[0] - boxes[0]).max() < 15


def test_no_face_in_flat_image_and_bad_model_refused(tmp_path):
    face = load_face_detector("blazeface-full", MODELS_DIR)
    boxes, scores = face.detect(np.full((240, 320, 3), 90, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    with pytest.raises(ModelError, match="not a face model"):
        load_face_detector("nanodet-m-416-int8", MODELS_DIR)
    assert read_manifest(MODELS_DIR)["blazeface-full"].task == "face"
