"""Grasp signals on hands posed by the project's own hand model: pinch distance, strength, hysteresis."""

from __future__ import annotations

import numpy as np
import pytest

from hand_recon_ros.models.hand_kinematics import BONE_LENGTH_PRIOR_M, JOINT_LIMITS_RAD, pose_joints
from hand_recon_ros.pipeline.grasp_signals import (
    FIST_ENTER,
    FIST_EXIT,
    PINCH_ENTER_RATIO,
    PINCH_EXIT_RATIO,
    GraspState,
    GraspTracker,
    grasp_strength,
    next_state,
)
from hand_recon_ros.pipeline.types import FrameResult, HandDetection, HandResult, RotatedRect


def posed(flex_fraction: float, side: str = "right") -> np.ndarray:
    angles = np.zeros((5, 3, 2))
    angles[1:, :, 0] = flex_fraction * JOINT_LIMITS_RAD[1:, :, 0, 1]
    return pose_joints(np.eye(3), np.array([0.0, 0.0, 0.5]), angles, BONE_LENGTH_PRIOR_M, side)


def frame_of(joints: np.ndarray, track_id: int = 3) -> FrameResult:
    detection = HandDetection("right", 0.9, 0.9, np.zeros((21, 2), np.float32), np.zeros(21, np.float32),
                              np.zeros((21, 3), np.float32), RotatedRect(0, 0, 1, 1, 0), track_id)
    return FrameResult(10, 10, True, [HandResult(detection, joints.astype(np.float32), np.ones(21, np.float32))])


def test_strength_grows_from_open_to_fist() -> None:
    values = [grasp_strength(posed(f)) for f in (0.0, 0.3, 0.6, 0.9)]
    assert values[0] < 0.05 and values[-1] > 0.8
    assert all(a < b for a, b in zip(values, values[1:]))
    assert grasp_strength(posed(0.9, "left")) == pytest.approx(values[-1], abs=1e-6)  # no side bias


def test_tracker_reports_pinch_distance_and_states() -> None:
    tracker = GraspTracker()
    open_hand = posed(0.0)
    frame = tracker.apply(frame_of(open_hand))
    grasp = frame.hands[0].grasp
    assert grasp.state is GraspState.OPEN
    assert grasp.pinch_distance_m == pytest.approx(float(np.linalg.norm(open_hand[4] - open_hand[8])), rel=1e-5)
    pinch = open_hand.copy()
    pinch[4] = pinch[8] + np.array([0.0, 0.0, 0.01])  # thumb tip 1 cm from the index tip
    assert tracker.apply(frame_of(pinch)).hands[0].grasp.state is GraspState.PINCH
    assert tracker.apply(frame_of(posed(0.9))).hands[0].grasp.state is GraspState.FIST
    no_3d = frame_of(open_hand)
    no_3d.hands[0].joints_3d = None
    assert tracker.apply(no_3d).hands[0].grasp is None


def test_hysteresis_holds_a_state_between_its_thresholds() -> None:
    middle_strength = (FIST_ENTER + FIST_EXIT) / 2
    middle_ratio = (PINCH_ENTER_RATIO + PINCH_EXIT_RATIO) / 2
    assert next_state(GraspState.OPEN, middle_strength, 1.0) is GraspState.OPEN
    assert next_state(GraspState.FIST, middle_strength, 1.0) is GraspState.FIST
    assert next_state(GraspState.FIST, FIST_EXIT - 0.01, 1.0) is GraspState.OPEN
    assert next_state(GraspState.OPEN, 0.0, middle_ratio) is GraspState.OPEN
    assert next_state(GraspState.PINCH, 0.0, middle_ratio) is GraspState.PINCH
    assert next_state(GraspState.PINCH, 0.0, PINCH_EXIT_RATIO + 0.01) is GraspState.OPEN
    assert next_state(GraspState.PINCH, FIST_ENTER, 0.0) is GraspState.FIST  # a fist wins over a pinch


def test_state_is_kept_per_track() -> None:
    tracker = GraspTracker()
    tracker.apply(frame_of(posed(0.9), track_id=1))  # track 1 enters FIST
    between = posed(0.55)
    strength = grasp_strength(between)
    assert FIST_EXIT < strength < FIST_ENTER, strength  # a pose between the two thresholds
    assert tracker.apply(frame_of(between, track_id=1)).hands[0].grasp.state is GraspState.FIST
    assert tracker.apply(frame_of(between, track_id=2)).hands[0].grasp.state is GraspState.OPEN
