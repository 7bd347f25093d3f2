"""ROI maths: palm → hand ROI, landmarks → next ROI, rotated crops and their round trip to image pixels."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from hand_recon_ros.pipeline.palm_decode import PalmDetection
from hand_recon_ros.pipeline.roi import (
    crop_points_to_image,
    crop_roi,
    image_points_to_crop,
    landmarks_to_roi,
    normalize_radians,
    palm_to_roi,
    roi_corners,
    roi_iou,
)
from hand_recon_ros.pipeline.types import RotatedRect


def _palm(wrist, middle, box=(100.0, 100.0, 40.0, 30.0)):
    keypoints = np.zeros((7, 2), np.float32)
    keypoints[0], keypoints[2] = wrist, middle
    return PalmDetection(0.9, np.array(box, np.float32), keypoints)


def _upright_hand(centre=(200.0, 200.0), scale=10.0, angle_rad=0.0):
    """21 keypoints of a flat hand with fingers pointing up (-y), rotated by angle about the wrist."""
    pts = [(0.0, 0.0)]
    for finger, x in enumerate((-4.0, -2.0, 0.0, 2.0, 4.0)):
        base = -3.0 if finger else -1.0
        pts += [(x, base - 2.0 * k) for k in range(4)]
    pts = np.array(pts) * scale
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return (pts @ np.array([[c, -s], [s, c]]).T + centre).astype(np.float32)


def test_normalize_radians():
    assert normalize_radians(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert normalize_radians(-math.pi / 4) == pytest.approx(-math.pi / 4)


def test_palm_roi_upright_hand_is_unrotated_shifted_up_and_scaled():
    roi = palm_to_roi(_palm((100, 120), (100, 80)))
    assert roi.rotation == pytest.approx(0.0, abs=1e-9)
    assert roi.width == pytest.approx(2.6 * 40) and roi.height == pytest.approx(2.6 * 40)
    assert roi.cx == pytest.approx(100.0)
    assert roi.cy == pytest.approx(100.0 - 0.5 * 30.0)  # shifted towards the fingers by half the box height


def test_palm_roi_rotation_follows_wrist_to_middle_mcp():
    # fingers pointing right (+x): the crop must be rotated so that they point up
    roi = palm_to_roi(_palm((80, 100), (120, 100)))
    assert roi.rotation == pytest.approx(math.pi / 2)
    assert roi.cx == pytest.approx(100.0 + 0.5 * 30.0)  # shift follows the hand axis
    assert roi.cy == pytest.approx(100.0)


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 90.0, -120.0])
def test_landmarks_roi_rotation_and_containment(angle_deg):
    angle = math.radians(angle_deg)
    kp = _upright_hand(angle_rad=angle)
    roi = landmarks_to_roi(kp)
    assert normalize_radians(roi.rotation - angle) == pytest.approx(0.0, abs=1e-6)
    assert roi.width == pytest.approx(roi.height)
    crop = image_points_to_crop(kp, roi, 224)
    assert crop.min() > 0 and crop.max() < 224  # every landmark inside the next crop
    # fingers point up in the crop: tips above the wrist
    assert crop[12, 1] < crop[0, 1]


def test_landmarks_roi_rejects_wrong_shape():
    with pytest.raises(ValueError, match="21, 2"):
        landmarks_to_roi(np.zeros((20, 2)))


@pytest.mark.parametrize("rotation", [0.0, 0.7, -2.0, math.pi])
def test_crop_image_round_trip(rotation):
    roi = RotatedRect(321.5, 210.25, 180.0, 150.0, rotation)
    crop_pts = np.random.default_rng(0).uniform(0, 224, size=(50, 2))
    image_pts = crop_points_to_image(crop_pts, roi, 224)
    np.testing.assert_allclose(image_points_to_crop(image_pts, roi, 224), crop_pts, atol=1e-3)
    # the crop centre is the ROI centre, the crop's top-left corner the first ROI corner
    np.testing.assert_allclose(crop_points_to_image(np.array([[112.0, 112.0]]), roi, 224)[0], [roi.cx, roi.cy],
                               atol=1e-4)
    np.testing.assert_allclose(crop_points_to_image(np.array([[0.0, 0.0]]), roi, 224)[0], roi_corners(roi)[0],
                               atol=1e-3)


@pytest.mark.parametrize("rotation", [0.0, 0.5, -1.9])
def test_crop_samples_the_right_pixels(rotation):
    image = np.zeros((400, 500, 3), np.uint8)
    spot = np.array([260.0, 180.0])
    cv2.circle(image, (260, 180), 3, (255, 255, 255), -1)
    roi = RotatedRect(250.0, 200.0, 112.0, 112.0, rotation)  # 2 crop pixels per image pixel
    crop = crop_roi(image, roi, 224)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    ys, xs = np.nonzero(crop[:, :, 0] > 128)
    found = np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # pixel index -> continuous crop coordinate
    np.testing.assert_allclose(crop_points_to_image(found[None], roi, 224)[0], spot, atol=0.6)


def test_roi_iou():
    a = RotatedRect(100, 100, 50, 50, 0.0)
    assert roi_iou(a, a) == pytest.approx(1.0, abs=1e-4)
    assert roi_iou(a, RotatedRect(300, 300, 50, 50, 0.3)) == 0.0
    assert roi_iou(a, RotatedRect(125, 100, 50, 50, 0.0)) == pytest.approx(1 / 3, abs=1e-3)
    # a 45° rotated copy of a square overlaps it by 2(sqrt2 - 1) / (2 - 2(sqrt2 - 1)) of the union
    inter = 2 * (math.sqrt(2) - 1)
    assert roi_iou(a, RotatedRect(100, 100, 50, 50, math.pi / 4)) == pytest.approx(inter / (2 - inter), abs=1e-3)
    assert roi_iou(a, RotatedRect(100, 100, 0, 50, 0.0)) == 0.0
