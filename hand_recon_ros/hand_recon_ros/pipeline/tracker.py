"""Tracking across frames: ROIs from the previous landmarks, de-duplication, stable track ids, hand sides."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hand_recon_ros.pipeline.landmark_estimator import LandmarkOutput
from hand_recon_ros.pipeline.roi import landmarks_to_roi, normalize_radians, roi_iou
from hand_recon_ros.pipeline.types import RotatedRect, Side

# MediaPipe drops a new palm whose ROI overlaps a tracked ROI at this IoU or more.
DUPLICATE_IOU = 0.5
# Two landmark results are the same hand when their keypoints are this close on average (fraction of the ROI
# side). Landmarks, not ROI overlap, so that two clasped hands with overlapping ROIs both survive.
DUPLICATE_KEYPOINT_FRACTION = 0.08
# Weight of the past in a track's handedness average (video mode): the label should not flicker.
HANDEDNESS_MEMORY = 0.7
# A track keeps last frame's ROI while the new one differs by less than all of these (MediaPipe's ROI-tracking
# rect requirements): a still hand then gets the same crop every frame instead of one that wanders with the
# landmarks' sub-pixel noise, so its keypoints, and its 3D, stay put. Fractions of the ROI's width.
ROI_KEEP_SHIFT_FRACTION = 0.02
ROI_KEEP_SCALE_FRACTION = 0.02
ROI_KEEP_ROTATION_RAD = 0.035


@dataclass
class Candidate:
    """An ROI that went through the landmark network: the ROI cropped, its track (-1 = new) and the result."""

    roi: RotatedRect
    track_id: int
    output: LandmarkOutput


@dataclass
class TrackedHand:
    """A hand kept for this frame: the candidate, its id, the next frame's ROI and smoothed handedness."""

    candidate: Candidate
    track_id: int
    next_roi: RotatedRect
    right_probability: float
    side: Side = "right"
    side_score: float = 0.5


@dataclass
class _Track:
    track_id: int
    roi: RotatedRect
    right_probability: float


@dataclass
class HandTracker:
    """Keeps tracks between frames (video mode) and turns landmark candidates into de-duplicated, id'd hands."""

    duplicate_iou: float = DUPLICATE_IOU
    duplicate_keypoint_fraction: float = DUPLICATE_KEYPOINT_FRACTION
    handedness_memory: float = HANDEDNESS_MEMORY
    tracks: list[_Track] = field(default_factory=list)
    next_id: int = 0

    def reset(self, restart_ids: bool = False) -> None:
        """Forget every track; ids keep increasing (a new hand never reuses an old id) unless restart_ids."""
        self.tracks = []
        if restart_ids:
            self.next_id = 0

    def tracked_rois(self) -> list[tuple[int, RotatedRect]]:
        """(track id, ROI for this frame) of every live track."""
        return [(t.track_id, t.roi) for t in self.tracks]

    def new_rois(self, palm_rois: list[RotatedRect], slots: int) -> list[RotatedRect]:
        """Palm ROIs not overlapping a tracked ROI or a better palm (IoU >= duplicate_iou), at most ``slots``."""
        kept: list[RotatedRect] = []
        taken = [t.roi for t in self.tracks]
        for roi in palm_rois:
            if len(kept) >= slots:
                break
            if all(roi_iou(roi, other) < self.duplicate_iou for other in taken):
                kept.append(roi)
                taken.append(roi)
        return kept

    def is_duplicate(self, keypoints_2d: np.ndarray, kept: TrackedHand) -> bool:
        """True when these landmarks are the kept hand again (mean keypoint distance below the fraction)."""
        limit = self.duplicate_keypoint_fraction * max(kept.next_roi.width, 1.0)
        return _mean_distance(keypoints_2d, kept.candidate.output.keypoints_2d) < limit

    def select(self, candidates: list[Candidate], min_presence: float, max_hands: int) -> list[Candidate]:
        """Present, non-duplicate candidates (tracked ones first, then by presence), at most max_hands; no state."""
        present = [c for c in candidates if c.output.presence >= min_presence]
        # Existing tracks win over new detections of the same hand; then the more confident one.
        present.sort(key=lambda c: (c.track_id < 0, c.track_id if c.track_id >= 0 else 0, -c.output.presence))
        kept: list[Candidate] = []
        limits: list[float] = []  # per kept hand: duplicate distance, a fraction of its next ROI's side
        for cand in present:
            if len(kept) >= max_hands:
                break
            keypoints = cand.output.keypoints_2d
            if any(_mean_distance(keypoints, k.output.keypoints_2d) < lim for k, lim in zip(kept, limits)):
                continue
            kept.append(cand)
            limits.append(self.duplicate_keypoint_fraction * max(landmarks_to_roi(keypoints).width, 1.0))
        return kept

    def update(
        self, candidates: list[Candidate], min_presence: float, max_hands: int, keep_tracks: bool
    ) -> list[TrackedHand]:
        """Keep present, non-duplicate hands (tracked ones first, then by presence), assign ids, store tracks."""
        previous = {t.track_id: t for t in self.tracks}
        hands: list[TrackedHand] = []
        for cand in self.select(candidates, min_presence, max_hands):
            next_roi = landmarks_to_roi(cand.output.keypoints_2d)
            if cand.track_id >= 0 and cand.track_id in previous:
                track_id = cand.track_id
                old = previous[track_id].right_probability
                right = self.handedness_memory * old + (1.0 - self.handedness_memory) * cand.output.right_probability
                next_roi = steady_roi(previous[track_id].roi, next_roi)
            else:
                track_id = self.next_id
                self.next_id += 1
                right = cand.output.right_probability
            hands.append(TrackedHand(cand, track_id, next_roi, right))
        hands.sort(key=lambda h: h.track_id)
        self.tracks = [_Track(h.track_id, h.next_roi, h.right_probability) for h in hands] if keep_tracks else []
        return hands


def steady_roi(previous: RotatedRect, new: RotatedRect) -> RotatedRect:
    """``previous`` when ``new`` is within the keep thresholds of it (shift, size, rotation), else ``new``."""
    size = max(previous.width, 1.0)
    shift = float(np.hypot(new.cx - previous.cx, new.cy - previous.cy))
    if (shift < ROI_KEEP_SHIFT_FRACTION * size
            and abs(new.width - previous.width) < ROI_KEEP_SCALE_FRACTION * size
            and abs(new.height - previous.height) < ROI_KEEP_SCALE_FRACTION * size
            and abs(normalize_radians(new.rotation - previous.rotation)) < ROI_KEEP_ROTATION_RAD):
        return previous
    return new


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1).mean())


def assign_sides(hands: list[TrackedHand], mirrored: bool) -> None:
    """Set each hand's true side and side_score in place from its right-hand probability.

    ``right_probability`` is for an un-mirrored image; a mirrored (selfie) image swaps it. When exactly two
    hands both get the same side (one person has one of each), the more confident keeps it and the other
    gets the opposite side with its (below 0.5) probability for that side as side_score.
    """
    for hand in hands:
        p_right = 1.0 - hand.right_probability if mirrored else hand.right_probability
        hand.side = "right" if p_right >= 0.5 else "left"
        hand.side_score = max(p_right, 1.0 - p_right)
    if len(hands) == 2 and hands[0].side == hands[1].side:
        weaker = min(hands, key=lambda h: h.side_score)
        weaker.side = "left" if weaker.side == "right" else "right"
        weaker.side_score = 1.0 - weaker.side_score
