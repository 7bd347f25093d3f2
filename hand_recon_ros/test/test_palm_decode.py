"""Palm post-processing on synthetic tensors: anchors, decode, weighted NMS, un-letterbox."""

from __future__ import annotations

import numpy as np
import pytest

from hand_recon_ros.pipeline.anchors import generate_anchors
from hand_recon_ros.pipeline.palm_decode import (
    Letterbox,
    box_iou,
    decode_palms,
    unletterbox,
    weighted_nms,
)

SIZE = 192


def test_anchor_count_and_layout():
    anchors = generate_anchors()
    assert anchors.shape == (2016, 2)
    # stride 8: 24x24 cells x 2 anchors, first cell centre at half a cell
    np.testing.assert_allclose(anchors[0], [0.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 24, 0.5 / 24])  # x runs fastest
    # stride 16 layers share one 12x12 grid with 6 anchors per cell
    np.testing.assert_allclose(anchors[1152], [0.5 / 12, 0.5 / 12])
    np.testing.assert_allclose(anchors[1152:1158], np.repeat(anchors[1152:1153], 6, axis=0))
    np.testing.assert_allclose(anchors[-1], [11.5 / 12, 11.5 / 12])
    assert anchors.min() > 0 and anchors.max() < 1


def _raw_with_box(anchor_index: int, dx_px: float, dy_px: float, w_px: float, h_px: float, logit: float):
    raw = np.zeros((1, 2016, 18), np.float32)
    logits = np.full((1, 2016, 1), -20.0, np.float32)
    raw[0, anchor_index, :4] = [dx_px, dy_px, w_px, h_px]
    raw[0, anchor_index, 4::2] = dx_px + np.arange(7)
    raw[0, anchor_index, 5::2] = dy_px - np.arange(7)
    logits[0, anchor_index, 0] = logit
    return raw, logits


def test_decode_places_box_relative_to_its_anchor():
    anchors = generate_anchors()
    raw, logits = _raw_with_box(1500, 9.6, -19.2, 38.4, 48.0, 3.0)
    boxes, scores = decode_palms(raw, logits, anchors, min_score=0.5)
    assert boxes.shape == (1, 18)
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)
    cx, cy = anchors[1500]
    np.testing.assert_allclose(boxes[0, :4], [cx + 0.05, cy - 0.1, 0.2, 0.25], atol=1e-6)
    np.testing.assert_allclose(boxes[0, 4::2], cx + (9.6 + np.arange(7)) / SIZE, atol=1e-6)
    np.testing.assert_allclose(boxes[0, 5::2], cy + (-19.2 - np.arange(7)) / SIZE, atol=1e-6)


def test_decode_threshold_and_logit_clipping():
    anchors = generate_anchors()
    raw, logits = _raw_with_box(10, 0, 0, 20, 20, 0.1)  # score 0.525
    assert decode_palms(raw, logits, anchors, 0.53)[0].shape[0] == 0
    assert decode_palms(raw, logits, anchors, 0.52)[0].shape[0] == 1
    logits[0, :, 0] = -1e6  # would overflow exp without clipping
    logits[0, 7, 0] = 1e6
    with np.errstate(over="raise"):
        boxes, scores = decode_palms(raw, logits, anchors, 0.5)
    assert boxes.shape[0] == 1 and scores[0] == pytest.approx(1.0)


def test_decode_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="anchors"):
        decode_palms(np.zeros((1, 100, 18)), np.zeros((1, 100, 1)), generate_anchors(), 0.5)


def test_weighted_nms_merges_overlaps_and_keeps_separate_boxes():
    boxes = np.zeros((3, 18), np.float32)
    boxes[0, :4] = [0.50, 0.50, 0.2, 0.2]
    boxes[1, :4] = [0.52, 0.50, 0.2, 0.2]  # IoU with box 0 ~0.82 -> merged
    boxes[2, :4] = [0.10, 0.10, 0.1, 0.1]  # far away -> its own detection
    boxes[:, 4] = [1.0, 2.0, 3.0]
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    merged, merged_scores = weighted_nms(boxes, scores)
    assert merged.shape == (2, 18)
    np.testing.assert_allclose(merged_scores, [0.9, 0.7])
    np.testing.assert_allclose(merged[0, 0], (0.9 * 0.50 + 0.6 * 0.52) / 1.5, atol=1e-6)
    np.testing.assert_allclose(merged[0, 4], (0.9 * 1.0 + 0.6 * 2.0) / 1.5, atol=1e-6)
    np.testing.assert_allclose(merged[1, :4], boxes[2, :4])
    assert weighted_nms(boxes, scores, max_count=1)[0].shape == (1, 18)
    empty, empty_scores = weighted_nms(np.zeros((0, 18), np.float32), np.zeros(0, np.float32))
    assert empty.shape == (0, 18) and empty_scores.shape == (0,)


def test_box_iou():
    box = np.array([0.0, 0.0, 2.0, 2.0])
    others = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 2.0, 2.0], [5.0, 5.0, 1.0, 1.0]])
    np.testing.assert_allclose(box_iou(box, others), [1.0, 2.0 / 6.0, 0.0])


@pytest.mark.parametrize(("width", "height"), [(640, 960), (1280, 720), (500, 500)])
def test_unletterbox_inverts_the_letterbox(width, height):
    box = Letterbox.for_image(width, height)
    assert box.size_px == SIZE
    assert min(box.pad_x_px, box.pad_y_px) == pytest.approx(0.0)
    # a point at pixel index (u, v) has continuous coordinate (u + 0.5, v + 0.5) in the image
    points = np.array([[0.0, 0.0], [width - 1, height - 1], [width * 0.3, height * 0.7]])
    normalised = ((points + 0.5) * box.scale + [box.pad_x_px, box.pad_y_px]) / SIZE
    row = np.zeros((1, 18), np.float32)
    row[0, 0:2] = normalised[2]
    row[0, 2:4] = [0.1, 0.2]
    row[0, 4:10] = normalised.reshape(-1)
    (det,) = unletterbox(row, np.array([0.8], np.float32), box)
    assert det.score == pytest.approx(0.8)
    np.testing.assert_allclose(det.box[:2], points[2], atol=1e-3)
    np.testing.assert_allclose(det.box[2:], [0.1 * SIZE / box.scale, 0.2 * SIZE / box.scale], rtol=1e-5)
    np.testing.assert_allclose(det.keypoints[:3], points, atol=1e-3)


def test_letterbox_rejects_empty_image():
    with pytest.raises(ValueError, match="positive"):
        Letterbox.for_image(0, 10)
