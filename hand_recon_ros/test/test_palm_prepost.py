"""Palm pre- and post-processing written for speed, against plain reference implementations.

The letterbox is written straight into the network's input buffer (its border rewritten only when the image
size changes); decoding thresholds the logits before the sigmoid; NMS computes all IoUs at once.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.special import expit

from hand_recon_ros.pipeline.anchors import PALM_INPUT_SIZE_PX, generate_anchors
from hand_recon_ros.pipeline.palm_decode import (
    NMS_IOU_THRESHOLD,
    NUM_PALM_COORDS,
    SCORE_CLIP_LOGIT,
    box_iou,
    decode_palms,
    weighted_nms,
)

ANCHORS = generate_anchors()


def _reference_letterbox(image: np.ndarray) -> np.ndarray:
    """The straightforward letterbox: zero canvas, resized image pasted in the middle, / 255."""
    height, width = image.shape[:2]
    scale = PALM_INPUT_SIZE_PX / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    x0, y0 = (PALM_INPUT_SIZE_PX - new_w) // 2, (PALM_INPUT_SIZE_PX - new_h) // 2
    canvas = np.zeros((PALM_INPUT_SIZE_PX, PALM_INPUT_SIZE_PX, 3), np.uint8)
    canvas[y0:y0 + new_h, x0:x0 + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return (canvas.astype(np.float64) / 255.0)[None]


def _reference_decode(raw_boxes: np.ndarray, logits: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Every anchor through the sigmoid, then the threshold (the obvious, slow way)."""
    scores = expit(np.clip(logits, -SCORE_CLIP_LOGIT, SCORE_CLIP_LOGIT))
    keep = np.flatnonzero(scores >= min_score)
    out = raw_boxes[keep] / float(PALM_INPUT_SIZE_PX)
    out[:, 0:2] += ANCHORS[keep]
    out[:, 4::2] += ANCHORS[keep, 0:1]
    out[:, 5::2] += ANCHORS[keep, 1:2]
    return out, scores[keep]


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, max_count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy weighted NMS one cluster at a time (the loop weighted_nms replaced)."""
    order = np.argsort(-scores, kind="stable")
    rest_boxes, rest_scores = boxes[order], scores[order]
    kept, kept_scores = [], []
    while rest_boxes.shape[0] and (max_count is None or len(kept) < max_count):
        cluster = box_iou(rest_boxes[0, :4], rest_boxes[:, :4]) > NMS_IOU_THRESHOLD
        cluster[0] = True
        weights = rest_scores[cluster]
        kept.append((rest_boxes[cluster] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(rest_scores[0])
        rest_boxes, rest_scores = rest_boxes[~cluster], rest_scores[~cluster]
    return np.array(kept, np.float32).reshape(-1, boxes.shape[1]), np.array(kept_scores, np.float32)


def test_letterbox_matches_reference_across_image_sizes(image_mode_pipeline):
    detector = image_mode_pipeline.palm
    rng = np.random.default_rng(0)
    # Tall, wide, tall again, square: the border of a previous size must not survive into the next one.
    for height, width in ((480, 200), (120, 640), (480, 200), (300, 300), (97, 131)):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        tensor, box = detector.preprocess(image)
        assert tensor.shape == (1, PALM_INPUT_SIZE_PX, PALM_INPUT_SIZE_PX, 3) and tensor.dtype == np.float32
        np.testing.assert_allclose(tensor, _reference_letterbox(image), atol=1e-6)
        assert box.scale == pytest.approx(max(1, round(width * PALM_INPUT_SIZE_PX / max(width, height))) / width)


@pytest.mark.parametrize("min_score", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_decode_matches_sigmoid_of_every_anchor(min_score):
    rng = np.random.default_rng(int(min_score * 10))
    raw = rng.normal(0, 20, (1, len(ANCHORS), NUM_PALM_COORDS)).astype(np.float32)
    logits = rng.normal(-4, 6, (1, len(ANCHORS), 1)).astype(np.float32)
    logits[0, :5, 0] = [200.0, 40.0, 0.0, -0.8473, 2.1972]  # clipped, rounds to 1.0, and at common thresholds
    boxes, scores = decode_palms(raw, logits, ANCHORS, min_score)
    ref_boxes, ref_scores = _reference_decode(raw[0], logits[0, :, 0], min_score)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-6)
    if min_score == 0.0:
        assert len(scores) == len(ANCHORS)


def test_threshold_exactly_at_a_logit_keeps_what_the_sigmoid_keeps():
    logits = np.full((len(ANCHORS),), -50.0, np.float32)
    threshold = 0.5
    logits[:3] = [np.nextafter(np.float32(0.0), np.float32(-1.0)), 0.0, np.nextafter(np.float32(0.0), np.float32(1))]
    raw = np.zeros((len(ANCHORS), NUM_PALM_COORDS), np.float32)
    _, scores = decode_palms(raw, logits, ANCHORS, threshold)
    _, ref = _reference_decode(raw, logits, threshold)
    assert len(scores) == len(ref) >= 2


@pytest.mark.parametrize("max_count", [None, 1, 2])
def test_nms_matches_one_cluster_at_a_time(max_count):
    rng = np.random.default_rng(5)
    centres = rng.uniform(0.2, 0.8, (4, 2))
    rows = []
    for c in centres:  # clusters of overlapping boxes around a few centres, plus lone boxes
        for _ in range(int(rng.integers(1, 6))):
            row = rng.uniform(0, 1, NUM_PALM_COORDS)
            row[0:2] = c + rng.normal(0, 0.02, 2)
            row[2:4] = rng.uniform(0.1, 0.2, 2)
            rows.append(row)
    boxes = np.array(rows, np.float32)
    scores = rng.uniform(0.5, 1.0, len(boxes)).astype(np.float32)
    got_boxes, got_scores = weighted_nms(boxes, scores, max_count=max_count)
    ref_boxes, ref_scores = _reference_nms(boxes, scores, max_count)
    np.testing.assert_array_equal(got_scores, ref_scores)
    np.testing.assert_allclose(got_boxes, ref_boxes, atol=1e-6)
    assert 1 <= len(got_scores) <= (max_count or len(boxes))


def test_nms_of_nothing_is_empty():
    boxes, scores = weighted_nms(np.zeros((0, NUM_PALM_COORDS), np.float32), np.zeros((0,), np.float32))
    assert boxes.shape == (0, NUM_PALM_COORDS) and scores.shape == (0,)
