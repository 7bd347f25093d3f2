"""Hand kinematics: FK/IK round trips, limits, bone lengths, both sides."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.models.inverse_kinematics import open_hand_pose


def test_prior_is_an_adult_hand():
    joints = hk.rest_joints()
    hand_length = np.linalg.norm(joints[12] - joints[0])  # wrist to middle fingertip, flat hand
    assert 0.17 < hand_length < 0.20
    np.testing.assert_allclose(hk.bone_lengths_of(joints), hk.BONE_LENGTH_PRIOR_M, atol=1e-12)


def test_fk_keeps_bone_lengths_for_any_pose():
    rng = np.random.default_rng(0)
    lengths = hk.BONE_LENGTH_PRIOR_M * rng.uniform(0.9, 1.1, 20)
    joints, frames = hk.forward_kinematics(hk.random_angles(rng, (50,), 1.0), lengths)
    np.testing.assert_allclose(hk.bone_lengths_of(joints), np.broadcast_to(lengths, (50, 20)), atol=1e-12)
    np.testing.assert_allclose(frames @ np.swapaxes(frames, -1, -2), np.broadcast_to(np.eye(3), frames.shape),
                               atol=1e-12)


@pytest.mark.parametrize("side", ["left", "right"])
def test_ik_reproduces_synthetic_poses_within_2mm(side):
    rng = np.random.default_rng(1 if side == "left" else 2)
    for _ in range(20):
        rotation = Rotation.random(random_state=rng.integers(1 << 30)).as_matrix()
        truth = hk.pose_joints(rotation, rng.normal(0, 0.2, 3), hk.random_angles(rng, spread=0.95),
                               hk.BONE_LENGTH_PRIOR_M, side)
        rot, trans, angles = open_hand_pose(truth, side)
        again = hk.pose_joints(rot, trans, angles, hk.bone_lengths_of(truth), side)
        assert np.abs(again - truth).max() < 0.002


def test_left_is_mirror_of_right():
    rng = np.random.default_rng(3)
    angles = hk.random_angles(rng)
    right = hk.pose_joints(np.eye(3), np.zeros(3), angles, hk.BONE_LENGTH_PRIOR_M, "right")
    left = hk.pose_joints(np.eye(3), np.zeros(3), angles, hk.BONE_LENGTH_PRIOR_M, "left")
    np.testing.assert_allclose(left, right * [-1, 1, 1])


def test_flexion_curls_fingers_towards_the_palm():
    angles = np.zeros((5, 3, 2))
    angles[1:, :, 0] = np.radians(60)
    joints = hk.forward_kinematics(angles, hk.BONE_LENGTH_PRIOR_M)[0]
    assert np.all(joints[[8, 12, 16, 20], 2] > 0.02)  # fingertips moved to the palmar side (+z)


def test_clip_to_limits_holds_every_joint():
    rng = np.random.default_rng(4)
    wild = rng.uniform(-4, 4, (100, 5, 3, 2))
    clipped = hk.clip_to_limits(wild)
    assert np.all(clipped >= hk.JOINT_LIMITS_RAD[..., 0]) and np.all(clipped <= hk.JOINT_LIMITS_RAD[..., 1])
    assert len(hk.ACTIVE_ANGLES) == 21


def test_bad_input_named():
    with pytest.raises(hk.KinematicsError, match="joints_hand must have shape"):
        hk.inverse_kinematics(np.zeros((20, 3)))
    with pytest.raises(hk.KinematicsError, match="side must be"):
        hk.side_mirror("middle")
