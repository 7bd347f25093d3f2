"""Palm detector post-processing: raw SSD tensors → scored boxes + 7 keypoints, weighted NMS, un-letterbox.

Follows MediaPipe's TensorsToDetections / NonMaxSuppression options for palm_detection (see
shared/notes/mediapipe-hand-models.md): 18 values per anchor (box cx, cy, w, h then 7 keypoints x, y), all in
input pixels relative to the anchor centre; scores are logits clipped to ±100; weighted NMS at IoU 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from hand_recon_ros.pipeline.anchors import PALM_INPUT_SIZE_PX

NUM_PALM_KEYPOINTS = 7
NUM_PALM_COORDS = 4 + 2 * NUM_PALM_KEYPOINTS  # 18
SCORE_CLIP_LOGIT = 100.0
NMS_IOU_THRESHOLD = 0.3


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
    boxes = np.asarray(raw_boxes, dtype=np.float32).reshape(-1, NUM_PALM_COORDS)
    logits = np.asarray(raw_logits, dtype=np.float32).reshape(-1)
    if boxes.shape[0] != anchors.shape[0] or logits.shape[0] != anchors.shape[0]:
        raise ValueError(
            f"palm outputs do not match the anchors: {boxes.shape[0]} boxes, {logits.shape[0]} scores, "
            f"{anchors.shape[0]} anchors"
        )
    scores = expit(np.clip(logits, -SCORE_CLIP_LOGIT, SCORE_CLIP_LOGIT))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return np.zeros((0, NUM_PALM_COORDS), np.float32), np.zeros((0,), np.float32)
    out = boxes[keep] / float(size_px)
    centres = anchors[keep]
    out[:, 0:2] += centres
    out[:, 4::2] += centres[:, 0:1]
    out[:, 5::2] += centres[:, 1:2]
    return out, scores[keep].astype(np.float32)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one centre-size box (4,) with each of others (K, 4) (any consistent units)."""
    half, half_o = box[2:4] / 2.0, others[:, 2:4] / 2.0
    lo = np.maximum(box[0:2] - half, others[:, 0:2] - half_o)
    hi = np.minimum(box[0:2] + half, others[:, 0:2] + half_o)
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU_THRESHOLD, max_count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each cluster (IoU > threshold with its best box) becomes the score-weighted mean.

    boxes (K, 18) as from decode_palms, scores (K,). Returns (M, 18) and the best score of each cluster.
    """
    order = np.argsort(-scores, kind="stable")
    remaining_boxes, remaining_scores = boxes[order], scores[order]
    kept_boxes: list[np.ndarray] = []
    kept_scores: list[float] = []
    while remaining_boxes.shape[0] and (max_count is None or len(kept_boxes) < max_count):
        ious = box_iou(remaining_boxes[0, :4], remaining_boxes[:, :4])
        cluster = ious > iou_threshold
        cluster[0] = True
        weights = remaining_scores[cluster]
        kept_boxes.append((remaining_boxes[cluster] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(float(remaining_scores[0]))
        remaining_boxes, remaining_scores = remaining_boxes[~cluster], remaining_scores[~cluster]
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
