"""Pose stage: the real int8 MoveNet MultiPose body + float decode via LiteRT."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from firmware.detect import DetectorConfig, ModelError, load_detector, load_pose
from firmware.paths import MODELS_DIR, eval_data_dir
from firmware.types import PERSON

IMG = eval_data_dir() / "coco128" / "images" / "train2017" / "000000000036.jpg"
needs_img = pytest.mark.skipif(not IMG.exists(), reason=f"evaluation data absent: {IMG}")


@pytest.fixture(scope="module")
def pose():
    return load_pose(models_dir=MODELS_DIR)


@needs_img
@pytest.mark.data
def test_keypoints_land_on_the_person(pose):
    img = cv2.imread(str(IMG))  # one standing woman, box about [168, 163, 478, 628]
    box = np.array([[168, 163, 478, 628]], np.float32)
    kp = pose.estimate(img, box)
    assert kp.shape == (1, 17, 3)
    good = kp[0, kp[0, :, 2] > 0.3]
    assert len(good) >= 8
    inside = (good[:, 0] > 140) & (good[:, 0] < 500) & (good[:, 1] > 140) & (good[:, 1] < 650)
    assert inside.mean() > 0.9
    # anatomy: nose above shoulders above hips (y grows downwards)
    nose, shoulders, hips = kp[0, 0, 1], kp[0, 5:7, 1].mean(), kp[0, 11:13, 1].mean()
    assert nose < shoulders < hips


@needs_img
@pytest.mark.data
def test_detector_with_pose_stage_adds_keypoints_to_people_only():
    det = load_detector(DetectorConfig(pose_model="movenet-multipose-int8", threads=1), MODELS_DIR)
    d = det.detect(cv2.imread(str(IMG)))
    assert d.keypoints is not None and d.keypoints.shape == (len(d), 17, 3)
    people = d.classes == PERSON
    assert people.any() and not np.isnan(d.keypoints[people]).all()
    assert np.isnan(d.keypoints[~people]).all()
    assert "pose" in det.last_timings


def test_no_person_box_gives_empty_and_wrong_model_refused(pose):
    assert pose.estimate(np.zeros((100, 100, 3), np.uint8), np.zeros((0, 4))).shape == (0, 17, 3)
    with pytest.raises(ModelError, match="not a pose model"):
        load_pose("blazeface-full", MODELS_DIR)
