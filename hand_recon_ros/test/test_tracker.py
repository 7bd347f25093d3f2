"""Tracking logic without networks: de-duplication, track ids, presence/max_hands, sides and mirroring."""

from __future__ import annotations

import numpy as np
import pytest

from hand_recon_ros.pipeline.landmark_estimator import LandmarkOutput
from hand_recon_ros.pipeline.roi import landmarks_to_roi, roi_iou
from hand_recon_ros.pipeline.tracker import ROI_KEEP_SHIFT_FRACTION, Candidate, HandTracker, TrackedHand, assign_sides
from hand_recon_ros.pipeline.types import RotatedRect


def _hand_keypoints(cx: float, cy: float, scale: float = 10.0) -> np.ndarray:
    pts = [(0.0, 0.0)]
    for finger, x in enumerate((-4.0, -2.0, 0.0, 2.0, 4.0)):
        base = -3.0 if finger else -1.0
        pts += [(x, base - 2.0 * k) for k in range(4)]
    return (np.array(pts) * scale + [cx, cy]).astype(np.float32)


def _candidate(cx: float, cy: float, track_id: int = -1, presence: float = 0.9, right: float = 0.9) -> Candidate:
    kp = _hand_keypoints(cx, cy)
    out = LandmarkOutput(kp, np.zeros(21, np.float32), np.zeros((21, 3), np.float32), presence, right)
    return Candidate(landmarks_to_roi(kp), track_id, out)


def test_new_ids_then_stable_ids_while_tracked():
    tracker = HandTracker()
    hands = tracker.update([_candidate(100, 300), _candidate(400, 300)], 0.5, 2, keep_tracks=True)
    assert [h.track_id for h in hands] == [0, 1]
    tracked = tracker.tracked_rois()
    assert [tid for tid, _ in tracked] == [0, 1]
    # next frame: the hands moved a little; candidates come with their track ids
    moved = [_candidate(105, 302, track_id=0), _candidate(395, 298, track_id=1)]
    hands = tracker.update(moved, 0.5, 2, keep_tracks=True)
    assert [h.track_id for h in hands] == [0, 1]
    # a lost track is gone and a re-found hand gets a fresh id
    hands = tracker.update([_candidate(105, 302, track_id=0), _candidate(395, 298)], 0.5, 2, keep_tracks=True)
    assert [h.track_id for h in hands] == [0, 2]


def test_duplicate_candidates_of_one_hand_are_merged_preferring_the_track():
    tracker = HandTracker()
    tracker.update([_candidate(100, 300)], 0.5, 2, keep_tracks=True)
    # the detector found the tracked hand again (slightly offset) with a higher presence
    hands = tracker.update([_candidate(100, 300, track_id=0, presence=0.7), _candidate(103, 301, presence=0.99)],
                           0.5, 2, keep_tracks=True)
    assert len(hands) == 1 and hands[0].track_id == 0


def test_clasped_hands_with_overlapping_rois_are_both_kept():
    tracker = HandTracker()
    first = _candidate(300, 300)
    # a second hand over the first: ROIs overlap a lot, but its landmarks are elsewhere (turned 90 degrees)
    kp = first.output.keypoints_2d
    turned = (kp - kp[9]) @ np.array([[0.0, -1.0], [1.0, 0.0]]) + kp[9] + [10.0, 0.0]
    out = LandmarkOutput(turned.astype(np.float32), np.zeros(21, np.float32), np.zeros((21, 3), np.float32), 0.8, 0.2)
    second = Candidate(landmarks_to_roi(turned), -1, out)
    assert roi_iou(landmarks_to_roi(kp), landmarks_to_roi(turned)) > 0.5
    hands = tracker.update([first, second], 0.5, 2, keep_tracks=True)
    assert len(hands) == 2


def test_new_palm_rois_overlapping_tracks_are_dropped():
    tracker = HandTracker()
    tracker.update([_candidate(100, 300)], 0.5, 2, keep_tracks=True)
    (tracked_roi,) = [roi for _, roi in tracker.tracked_rois()]
    same = RotatedRect(tracked_roi.cx + 3, tracked_roi.cy, tracked_roi.width, tracked_roi.height, 0.0)
    other = RotatedRect(500, 300, 100, 100, 0.0)
    other_dup = RotatedRect(505, 300, 100, 100, 0.0)
    kept = tracker.new_rois([same, other, other_dup], slots=5)
    assert kept == [other]
    assert tracker.new_rois([other, RotatedRect(900, 300, 100, 100, 0.0)], slots=1) == [other]


def test_presence_threshold_and_max_hands():
    tracker = HandTracker()
    cands = [_candidate(100, 300, presence=0.4), _candidate(400, 300, presence=0.8),
             _candidate(700, 300, presence=0.95)]
    hands = tracker.update(cands, 0.5, 1, keep_tracks=True)
    assert len(hands) == 1 and hands[0].candidate.output.presence == pytest.approx(0.95)
    assert len(tracker.tracks) == 1
    assert tracker.update(cands, 0.5, 5, keep_tracks=False) and tracker.tracks == []


def test_reset_forgets_tracks_and_optionally_ids():
    tracker = HandTracker()
    tracker.update([_candidate(100, 300)], 0.5, 2, keep_tracks=True)
    tracker.reset()
    assert tracker.tracked_rois() == []
    assert tracker.update([_candidate(100, 300)], 0.5, 2, keep_tracks=True)[0].track_id == 1
    tracker.reset(restart_ids=True)
    assert tracker.update([_candidate(100, 300)], 0.5, 2, keep_tracks=True)[0].track_id == 0


def test_handedness_is_smoothed_along_a_track():
    tracker = HandTracker(handedness_memory=0.7)
    tracker.update([_candidate(100, 300, right=0.9)], 0.5, 2, keep_tracks=True)
    (hand,) = tracker.update([_candidate(100, 300, track_id=0, right=0.1)], 0.5, 2, keep_tracks=True)
    assert hand.right_probability == pytest.approx(0.7 * 0.9 + 0.3 * 0.1)


def _tracked(right: float) -> TrackedHand:
    cand = _candidate(0, 0, right=right)
    return TrackedHand(cand, 0, cand.roi, right)


@pytest.mark.parametrize(("mirrored", "expected"), [(False, ["right", "left"]), (True, ["left", "right"])])
def test_sides_and_mirroring(mirrored, expected):
    hands = [_tracked(0.8), _tracked(0.1)]
    assign_sides(hands, mirrored=mirrored)
    assert [h.side for h in hands] == expected
    assert [h.side_score for h in hands] == pytest.approx([0.8, 0.9])


def test_two_hands_with_the_same_side_keep_the_more_confident_label():
    hands = [_tracked(0.7), _tracked(0.95)]
    assign_sides(hands, mirrored=False)
    assert [h.side for h in hands] == ["left", "right"]
    assert hands[0].side_score == pytest.approx(0.3)  # below 0.5: the label was forced
    assert hands[1].side_score == pytest.approx(0.95)
    three = [_tracked(0.7), _tracked(0.95), _tracked(0.8)]  # several people: no forcing
    assign_sides(three, mirrored=False)
    assert [h.side for h in three] == ["right"] * 3


def test_select_is_the_update_choice_without_touching_tracks():
    tracker = HandTracker()
    tracker.update([_candidate(100, 100)], 0.5, 2, keep_tracks=True)
    before = [(t.track_id, t.roi) for t in tracker.tracks], tracker.next_id
    candidates = [_candidate(100.5, 100, track_id=0, presence=0.6), _candidate(100, 100, presence=0.99),
                  _candidate(300, 300, presence=0.4), _candidate(500, 100, presence=0.7)]
    kept = tracker.select(candidates, 0.5, 2)
    assert [(c.track_id, c.output.presence) for c in kept] == [(0, 0.6), (-1, 0.7)]
    assert ([(t.track_id, t.roi) for t in tracker.tracks], tracker.next_id) == before
    assert [h.candidate for h in tracker.update(candidates, 0.5, 2, keep_tracks=True)] == kept


def test_a_track_keeps_its_roi_while_the_landmarks_barely_move():
    tracker = HandTracker()
    tracker.update([_candidate(200, 300)], 0.5, 1, keep_tracks=True)
    (_, first), = tracker.tracked_rois()
    small = 0.3 * ROI_KEEP_SHIFT_FRACTION * first.width  # landmark noise: the same crop next frame
    tracker.update([_candidate(200 + small, 300, track_id=0)], 0.5, 1, keep_tracks=True)
    assert tracker.tracked_rois()[0][1] == first
    large = 3.0 * ROI_KEEP_SHIFT_FRACTION * first.width  # real motion: the crop follows
    tracker.update([_candidate(200 + large, 300, track_id=0)], 0.5, 1, keep_tracks=True)
    moved = tracker.tracked_rois()[0][1]
    assert moved != first and moved.cx == pytest.approx(landmarks_to_roi(_hand_keypoints(200 + large, 300)).cx)
    tracker.update([_candidate(200 + large, 300)], 0.5, 1, keep_tracks=True)  # a new hand takes its own ROI
    assert tracker.tracked_rois()[0][0] == 1
