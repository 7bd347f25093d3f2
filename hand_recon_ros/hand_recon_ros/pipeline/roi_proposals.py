"""Second-stage hand finding: generic ROI proposals judged by the landmark network (a "global-local" search).

MediaPipe's palm detector misses hands it cannot see as a palm: close-ups, dark studio shots, two hands in
contact. The landmark network, cropped roughly around a hand, still finds it and says so with its presence
score. So when the detector yields fewer than ``max_hands`` hands we crop a coarse, generic multi-scale grid
of squares (plus a few boxes beside and over each hand already found, where its partner usually is), run
them through the landmark network in batches, let the present ones converge onto their hand by re-cropping
from their own landmarks (as tracking does), and keep those whose presence then clears a strict threshold.
The grid is generic (the image, squares of its short side, half-size overlapping tiles); the acceptance
threshold comes from hand-free images. Disclosure: after a first look at the InterHand2.6M check photos two
values were changed once (PROPOSAL_MIN_PRESENCE 0.9 -> 0.8, MAX_REFINED_SEEDS 4 -> 6), so those photos are not
a fully held-out measure of this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hand_recon_ros.pipeline.landmark_estimator import LandmarkEstimator, LandmarkOutput
from hand_recon_ros.pipeline.palm_detector import PalmDetector
from hand_recon_ros.pipeline.palm_proposals import palm_candidates
from hand_recon_ros.pipeline.roi import landmarks_to_roi, roi_iou
from hand_recon_ros.pipeline.types import RotatedRect

# A grid crop is refined when its presence reaches the pipeline's min_presence_score; the converged hand is kept
# only with at least this presence (stricter than tracked hands: a proposal is a guess, a track is not). On
# hand-free images (noise, gradients, random shapes, woman_hands.jpg with both hands masked out) no refined
# proposal exceeded 0.2.
PROPOSAL_MIN_PRESENCE = 0.8
# Crop rotations tried at the two coarse levels (the landmark network expects a roughly upright hand).
COARSE_ROTATIONS_RAD: tuple[float, ...] = (0.0, math.pi / 2.0, math.pi, -math.pi / 2.0)
# Crop rotations tried at the fine level (rotation 0 only: the fine level has the most tiles).
FINE_ROTATIONS_RAD: tuple[float, ...] = (0.0,)
# Fine tiles are this fraction of the image's short side; neighbouring tiles overlap by half a tile.
FINE_TILE_FRACTION = 0.5
TILE_OVERLAP_FRACTION = 0.5
# Partner proposals around a found hand: its ROI shifted sideways by this fraction of its width (both ways).
PARTNER_SHIFT_FRACTION = 0.5
# Most re-crops from the landmarks after the grid pass (each one is one more batched landmark call); a proposal
# stops early once its ROI has converged (IoU with the previous ROI at least CONVERGED_IOU).
MAX_REFINE_PASSES = 4
CONVERGED_IOU = 0.85
# Most grid crops refined (the best by presence, after de-duplication): two interacting hands give many
# overlapping seeds of the more visible hand, so a few more than the missing-hand count.
MAX_REFINED_SEEDS = 6
# Most grid crops per image (typical images give 27-37); extreme aspect ratios (a 4000x100 strip would give ~800)
# keep an evenly spread subset, the whole-image crops always included.
MAX_GRID_CROPS = 64
# Crops per landmark call (backends get max_batch >= this). The grid runs in chunks of this size: with ONNX
# Runtime on a 2-core CPU the 34-crop grid of a 334x512 image took 155 ms as one call and 113 ms in chunks of 8
# (median of 6 rounds; 12: 119 ms, 17: 132 ms, 4: 118 ms), large batches falling out of the CPU caches.
MAX_PROPOSAL_BATCH = 8
# Proposal sources (PipelineConfig.proposal_source): "grid" = the generic grid above plus the partner boxes
# (~37 landmark crops); "palm" = the palm detector's weak boxes on a normalised look at the frame and its tiles
# (palm_proposals.py), PipelineConfig.proposal_crops landmark crops judged, then at most PALM_REFINE_PASSES re-crops
# of at most the missing-hand count.
DEFAULT_PROPOSAL_CROPS = 2
PALM_REFINE_PASSES = 2
# Two final proposals called the same side whose landmark ROIs overlap at least this much are one hand fitted twice
# (two converged fits of the more visible of two hands in contact would otherwise take both slots).
SAME_SIDE_OVERLAP_IOU = 0.3
# Two proposal results are the same hand when their mean keypoint distance is below this fraction of the ROI.
DUPLICATE_KEYPOINT_FRACTION = 0.15


@dataclass
class Proposal:
    """A proposal ROI that converged: the last ROI cropped and the landmark output on it."""

    roi: RotatedRect
    output: LandmarkOutput


def tile_centres(length: float, side: float, overlap: float) -> list[float]:
    """Evenly spaced centres of tiles of size ``side`` covering [0, length] with at least ``overlap`` overlap."""
    if side >= length:
        return [length / 2.0]
    stride = side * (1.0 - overlap)
    count = int(math.ceil((length - side) / stride)) + 1
    return [float(c) for c in np.linspace(side / 2.0, length - side / 2.0, count)]


def grid_proposals(width: int, height: int) -> list[RotatedRect]:
    """Square crops: the whole image, its halves along the long side, half-size overlapping tiles (pixels)."""
    if width < 2 or height < 2:
        raise ValueError(f"image must be at least 2x2 pixels for proposals, got {width}x{height}")
    short, long_ = float(min(width, height)), float(max(width, height))
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    rects = [RotatedRect(cx, cy, long_, long_, r) for r in COARSE_ROTATIONS_RAD]
    for c in tile_centres(long_, short, TILE_OVERLAP_FRACTION) if long_ > short else []:
        x, y = (c - 0.5, cy) if width >= height else (cx, c - 0.5)
        rects += [RotatedRect(x, y, short, short, r) for r in COARSE_ROTATIONS_RAD]
    side = FINE_TILE_FRACTION * short
    for y in tile_centres(height, side, TILE_OVERLAP_FRACTION):
        for x in tile_centres(width, side, TILE_OVERLAP_FRACTION):
            rects += [RotatedRect(x - 0.5, y - 0.5, side, side, r) for r in FINE_ROTATIONS_RAD]
    if len(rects) > MAX_GRID_CROPS:
        whole = len(COARSE_ROTATIONS_RAD)
        keep = np.linspace(whole, len(rects) - 1, MAX_GRID_CROPS - whole).round().astype(int)
        rects = rects[:whole] + [rects[i] for i in sorted(set(keep.tolist()))]
    return rects


def partner_proposals(found: list[RotatedRect]) -> list[RotatedRect]:
    """Where the other hand of a found one often is: beside it (both ways) and over it, mirrored rotation."""
    rects = []
    for roi in found:
        cos_r, sin_r = math.cos(roi.rotation), math.sin(roi.rotation)
        shift = PARTNER_SHIFT_FRACTION * roi.width
        for sign in (-1.0, 1.0):
            rects.append(RotatedRect(roi.cx + sign * shift * cos_r, roi.cy + sign * shift * sin_r,
                                     roi.width, roi.height, -roi.rotation))
        rects.append(RotatedRect(roi.cx, roi.cy, roi.width, roi.height, -roi.rotation))
    return rects


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1).mean())


def _same_hand(a: np.ndarray, b: np.ndarray, roi_width: float) -> bool:
    return _mean_distance(a, b) < DUPLICATE_KEYPOINT_FRACTION * max(roi_width, 1.0)


def _same_side(a: Proposal, b: Proposal) -> bool:
    """Both proposals called the same side by the handedness output."""
    return (a.output.right_probability >= 0.5) == (b.output.right_probability >= 0.5)


def _same_side_overlap(a: Proposal, b: Proposal) -> bool:
    """Both called the same side and their landmark ROIs overlap: one hand fitted twice (no one has two lefts)."""
    return _same_side(a, b) and roi_iou(landmarks_to_roi(a.output.keypoints_2d),
                                 landmarks_to_roi(b.output.keypoints_2d)) >= SAME_SIDE_OVERLAP_IOU


def _dedupe(items: list[Proposal], found: list[np.ndarray], limit: int, by_side: bool = False) -> list[Proposal]:
    """Best-presence-first proposals that are not a found hand nor a better proposal, at most ``limit``."""
    kept: list[Proposal] = []
    for item in sorted(items, key=lambda p: -p.output.presence):
        if len(kept) >= limit:
            break
        width = landmarks_to_roi(item.output.keypoints_2d).width
        taken = found + [k.output.keypoints_2d for k in kept]
        if any(_same_hand(item.output.keypoints_2d, kp, width) for kp in taken):
            continue
        if by_side and any(_same_side_overlap(item, k) for k in kept):
            continue
        kept.append(item)
    return kept


def _estimate(estimator: LandmarkEstimator, image_rgb: np.ndarray, rois: list[RotatedRect]) -> list[LandmarkOutput]:
    """Landmark outputs for the ROIs, MAX_PROPOSAL_BATCH crops per network call."""
    return [out for i in range(0, len(rois), MAX_PROPOSAL_BATCH)
            for out in estimator.estimate(image_rgb, rois[i:i + MAX_PROPOSAL_BATCH])]


def propose_hands(
    estimator: LandmarkEstimator,
    image_rgb: np.ndarray,
    found: list[tuple[RotatedRect, np.ndarray]],
    slots: int,
    min_presence: float,
    palm: PalmDetector | None = None,
    crops: int = DEFAULT_PROPOSAL_CROPS,
) -> list[Proposal]:
    """Up to ``slots`` hands not in ``found`` ((ROI, keypoints) of hands already kept), found by proposals.

    With ``palm``: the ``crops`` best palm-look candidates (palm_proposals.palm_candidates), at most ``slots`` of
    them refined PALM_REFINE_PASSES times; without: the generic grid plus partner boxes, up to MAX_REFINED_SEEDS
    refined to convergence. A first-pass crop is refined when its presence reaches ``min_presence`` (the
    pipeline's threshold); a converged one is kept with max(min_presence, PROPOSAL_MIN_PRESENCE), so an empty
    scene yields nothing.
    """
    if slots <= 0:
        return []
    height, width = image_rgb.shape[:2]
    found_rois = [roi for roi, _ in found]
    found_kp = [kp for _, kp in found]
    if palm is None:
        rois = grid_proposals(width, height) + partner_proposals(found_rois)
        return _judge(estimator, image_rgb, rois, found_kp, slots, min_presence, MAX_REFINED_SEEDS,
                      MAX_REFINE_PASSES, best_fit=False)
    rois = palm_candidates(palm, image_rgb, found_rois, max(crops, slots))
    return _judge(estimator, image_rgb, rois, found_kp, slots, min_presence, slots, PALM_REFINE_PASSES,
                  best_fit=True)


def _judge(
    estimator: LandmarkEstimator, image_rgb: np.ndarray, rois: list[RotatedRect], found_kp: list[np.ndarray],
    slots: int, min_presence: float, seeds: int, passes: int, best_fit: bool,
) -> list[Proposal]:
    """Landmark-judge the ROIs, refine the best ``seeds`` present ones (``passes`` re-crops at most, fewer once
    converged), keep up to ``slots`` new strong hands.

    ``best_fit`` (source "palm"): a converged proposal keeps the better of its last two fits, and two kept ones of
    the same side that overlap are one hand; off for the grid, so its results stay as they were.
    """
    outputs = _estimate(estimator, image_rgb, rois)
    items = [Proposal(roi, out) for roi, out in zip(rois, outputs) if out.presence >= min_presence]
    items = _dedupe(items, found_kp, seeds, by_side=best_fit)
    threshold = max(float(min_presence), PROPOSAL_MIN_PRESENCE)
    done: list[Proposal] = []
    for _ in range(passes):
        if not items:
            break
        rois = [landmarks_to_roi(p.output.keypoints_2d) for p in items]
        outputs = _estimate(estimator, image_rgb, rois)
        moving = []
        for old, roi, out in zip(items, rois, outputs):
            if out.presence < min_presence:
                continue
            new = Proposal(roi, out)
            if roi_iou(old.roi, roi) >= CONVERGED_IOU:  # converged (best_fit: the better of its last two fits)
                done.append(old if best_fit and old.output.presence > out.presence else new)
            else:
                moving.append(new)
        items = _dedupe(moving, found_kp + [p.output.keypoints_2d for p in done], seeds, by_side=best_fit)
    return _dedupe([p for p in done + items if p.output.presence >= threshold], found_kp, slots, by_side=best_fit)
