"""Palm detector post-processing: raw SSD tensors → scored boxes + 7 keypoints, weighted NMS, un-letterbox.

Follows MediaPipe's TensorsToDetections / NonMaxSuppression options for palm_detection (see
shared/notes/mediapipe-hand-models.md): 18 values per anchor (box cx, cy, w, h then 7 keypoints x, y), all in
input pixels relative to the anchor centre; scores are logits clipped to ±100; weighted NMS at IoU 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from hand_recon_ros.pipeline.anchors import PALM_INPUT_SIZE_PX

NUM_PALM_KEYPOINTS = 7
NUM_PALM_COORDS = 4 + 2 * NUM_PALM_KEYPOINTS  # 18
SCORE_CLIP_LOGIT = 100.0
NMS_IOU_THRESHOLD = 0.3
# Logits within this of the score threshold's logit are decoded and tested exactly (float32 rounding).
LOGIT_MARGIN = 1e-3


@dataclass
class Letterbox:
    """How an image was fitted into the square network input: pixel scale and zero padding (input pixels)."""

    scale: float
    pad_x_px: float
    pad_y_px: float
    size_px: int = PALM_INPUT_SIZE_PX

    @classmethod
    def for_image(cls, width: int, height: int, size_px: int = PALM_INPUT_SIZE_PX) -> Letterbox:
        """The aspect-preserving fit of a width x height image, centred with equal borders."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        scale = size_px / max(width, height)
        return cls(scale, (size_px - width * scale) / 2.0, (size_px - height * scale) / 2.0, size_px)


@dataclass
class PalmDetection:
    """One palm in image pixels: score in [0, 1], box centre/size (4,), keypoints (7, 2) float32."""

    score: float
    box: np.ndarray
    keypoints: np.ndarray


def _palm_outputs(raw_boxes: np.ndarray, raw_logits: np.ndarray, anchors: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The palm network's outputs as contiguous float32 (N, 18) boxes and (N,) logits, checked against the anchors."""
    boxes = np.ascontiguousarray(raw_boxes, dtype=np.float32).reshape(-1, NUM_PALM_COORDS)
    logits = np.ascontiguousarray(raw_logits, dtype=np.float32).reshape(-1)
    if boxes.shape[0] != anchors.shape[0] or logits.shape[0] != anchors.shape[0]:
        raise ValueError(
            f"palm outputs do not match the anchors: {boxes.shape[0]} boxes, {logits.shape[0]} scores, "
            f"{anchors.shape[0]} anchors"
        )
    return boxes, logits


def decode_palms(
    raw_boxes: np.ndarray,
    raw_logits: np.ndarray,
    anchors: np.ndarray,
    min_score: float,
    size_px: int = PALM_INPUT_SIZE_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode raw outputs to (boxes (K, 18) normalised input coordinates, scores (K,)) with score >= min_score.

    raw_boxes: (N, 18) or (1, N, 18); raw_logits: (N,) / (N, 1) / (1, N, 1); anchors: (N, 2) centres in [0, 1].
    Each output row is cx, cy, w, h, then 7 keypoint x, y pairs, all normalised to the network input.
    """
    boxes, logits = _palm_outputs(raw_boxes, raw_logits, anchors)
    # Threshold the logits (sigmoid is monotonic) so only the kept candidates are decoded: a frame has ~2016
    # anchors and a handful above the threshold. The score test is repeated on the kept ones for exact equality.
    if 0.0 < min_score < 1.0:
        candidates = np.flatnonzero(logits >= np.float32(float(logit(min_score)) - LOGIT_MARGIN))
    else:  # nothing to pre-select (<= 0), or scores that round to 1.0 (>= 1)
        candidates = np.arange(logits.shape[0])
    scores = expit(np.clip(logits[candidates], -SCORE_CLIP_LOGIT, SCORE_CLIP_LOGIT))
    kept = scores >= min_score
    keep, scores = candidates[kept], scores[kept]
    if keep.size == 0:
        return np.zeros((0, NUM_PALM_COORDS), np.float32), np.zeros((0,), np.float32)
    out = boxes[keep] / np.float32(size_px)
    centres = anchors[keep]
    out[:, 0:2] += centres
    out[:, 4::2] += centres[:, 0:1]
    out[:, 5::2] += centres[:, 1:2]
    return out, scores.astype(np.float32)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one centre-size box (4,) with each of others (K, 4) (any consistent units)."""
    half, half_o = box[2:4] / 2.0, others[:, 2:4] / 2.0
    lo = np.maximum(box[0:2] - half, others[:, 0:2] - half_o)
    hi = np.minimum(box[0:2] + half, others[:, 0:2] + half_o)
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """IoU (K, K) of every pair of centre-size boxes (K, 4) (any consistent units)."""
    half = boxes[:, 2:4] / 2.0
    lo = np.maximum((boxes[:, None, 0:2] - half[:, None]), (boxes[None, :, 0:2] - half[None]))
    hi = np.minimum((boxes[:, None, 0:2] + half[:, None]), (boxes[None, :, 0:2] + half[None]))
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=-1)
    area = boxes[:, 2] * boxes[:, 3]
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU_THRESHOLD, max_count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each cluster (IoU > threshold with its best box) becomes the score-weighted mean.

    boxes (K, 18) as from decode_palms, scores (K,). Returns (M, 18) and the best score of each cluster.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_boxes, sorted_scores = boxes[order], scores[order]
    count = sorted_boxes.shape[0]
    # Every pairwise IoU at once (K is small: the candidates above the score threshold), then greedy clusters.
    ious = box_iou_matrix(sorted_boxes[:, :4])
    free = np.ones(count, bool)
    kept_boxes: list[np.ndarray] = []
    kept_scores: list[float] = []
    for best in range(count):
        if max_count is not None and len(kept_boxes) >= max_count:
            break
        if not free[best]:
            continue
        cluster = free & (ious[best] > iou_threshold)
        cluster[best] = True
        weights = sorted_scores[cluster]
        kept_boxes.append((sorted_boxes[cluster] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(float(sorted_scores[best]))
        free &= ~cluster
    if not kept_boxes:
        return np.zeros((0, boxes.shape[1]), np.float32), np.zeros((0,), np.float32)
    return np.stack(kept_boxes).astype(np.float32), np.asarray(kept_scores, np.float32)


def unletterbox(boxes: np.ndarray, scores: np.ndarray, letterbox: Letterbox) -> list[PalmDetection]:
    """Map normalised network-input boxes (M, 18) back to image pixel-index coordinates, one PalmDetection each."""
    detections = []
    size = float(letterbox.size_px)
    for row, score in zip(boxes, scores):
        xy = row.reshape(-1, 2) * size  # (9, 2): centre, size, 7 keypoints in input pixels
        # Continuous input coordinates → continuous image coordinates → pixel-index coordinates (-0.5).
        centre = (xy[0] - (letterbox.pad_x_px, letterbox.pad_y_px)) / letterbox.scale - 0.5
        wh = xy[1] / letterbox.scale
        keypoints = (xy[2:] - (letterbox.pad_x_px, letterbox.pad_y_px)) / letterbox.scale - 0.5
        detections.append(
            PalmDetection(float(score), np.concatenate([centre, wh]).astype(np.float32), keypoints.astype(np.float32))
        )
    return detections


def compiled_palms(raw_boxes: np.ndarray, raw_logits: np.ndarray, anchors: np.ndarray, min_score: float,
                   letterbox: Letterbox, max_count: int | None = None) -> list[PalmDetection]:
    """decode_palms + weighted_nms + unletterbox in one compiled call (prepost_kernels.palm_detections)."""
    from hand_recon_ros.pipeline import prepost_kernels

    boxes, logits = _palm_outputs(raw_boxes, raw_logits, anchors)
    threshold = _logit_threshold(min_score)
    rows, scores = prepost_kernels.palm_detections(
        boxes, logits, anchors, float(min_score), 0.0 if threshold is None else threshold, threshold is not None,
        int(letterbox.size_px), NMS_IOU_THRESHOLD, -1 if max_count is None else int(max_count),
        float(letterbox.scale), float(letterbox.pad_x_px), float(letterbox.pad_y_px))
    return [PalmDetection(float(score), row[:4], row[4:].reshape(NUM_PALM_KEYPOINTS, 2))
            for row, score in zip(rows, scores.tolist())]


def _logit_threshold(min_score: float) -> float | None:
    """The logit below which no score reaches min_score (less a float32 margin), or None when nothing can be
    pre-selected (min_score <= 0, or >= 1 where scores round to 1.0)."""
    if 0.0 < min_score < 1.0:
        return float(np.float32(float(logit(min_score)) - LOGIT_MARGIN))
    return None
