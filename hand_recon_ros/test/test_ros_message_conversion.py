"""ros.message_conversion: FrameResult -> HandArray and CameraInfo -> CameraIntrinsics."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from hand_recon_msgs.msg import Hand  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import CUBE_FACES, make_camera_info, synthetic_hand  # noqa: E402

from hand_recon_ros.pipeline.types import CameraIntrinsics, FrameResult, IntrinsicsError  # noqa: E402
from hand_recon_ros.ros.message_conversion import (  # noqa: E402
    camera_info_to_intrinsics,
    frame_result_to_hand_array,
    intrinsics_to_camera_info,
)


def test_hand_array_fields_follow_the_result() -> None:
    left, right = synthetic_hand("left", True), synthetic_hand("right", False)
    right = dataclasses.replace(right, wrist_quaternion=np.array([0, 0, 2.0, 0], np.float32))  # not unit
    header = Header(frame_id="cam")
    msg = frame_result_to_hand_array(FrameResult(640, 480, False, [left, right]), header)
    assert msg.header.frame_id == "cam" and msg.intrinsics_known is False
    assert [h.side for h in msg.hands] == [Hand.LEFT, Hand.RIGHT]
    got = np.array([[p.x, p.y, p.z] for p in msg.hands[0].joints])
    np.testing.assert_allclose(got, left.joints_3d, atol=1e-6)
    np.testing.assert_allclose(np.asarray(msg.hands[0].keypoints_2d).reshape(21, 2), left.detection.keypoints_2d)
    assert len(msg.hands[0].mesh.triangles) == len(CUBE_FACES) and len(msg.hands[1].mesh.vertices) == 0
    q = msg.hands[1].wrist_pose.orientation
    assert (q.x, q.y, q.z, q.w) == (0.0, 0.0, 1.0, 0.0)
    assert msg.hands[0].wrist_pose.position.x == pytest.approx(-0.1)


def test_hands_without_metric_3d_are_left_out_and_empty_frames_are_valid() -> None:
    unplaced = dataclasses.replace(synthetic_hand("left", False), joints_3d=None)
    nan = dataclasses.replace(synthetic_hand("right", False), joints_3d=np.full((21, 3), np.nan, np.float32))
    msg = frame_result_to_hand_array(FrameResult(640, 480, True, [unplaced, nan]), Header())
    assert msg.hands == [] and msg.intrinsics_known is True


def test_camera_info_round_trip_and_refusals() -> None:
    intrinsics = camera_info_to_intrinsics(make_camera_info(640, 480, "cam", f_px=612.5))
    assert (intrinsics.fx, intrinsics.cx, intrinsics.width, intrinsics.known) == (612.5, 320.0, 640, True)
    back = camera_info_to_intrinsics(intrinsics_to_camera_info(CameraIntrinsics(500, 510, 300, 200, 600, 400)))
    assert (back.fx, back.fy, back.cx, back.cy, back.width, back.height) == (500, 510, 300, 200, 600, 400)
    uncalibrated = make_camera_info(640, 480, "cam")
    uncalibrated.k = [0.0] * 9
    assert camera_info_to_intrinsics(uncalibrated) is None
    nan = make_camera_info(640, 480, "cam")
    nan.k = [float("nan")] + list(nan.k)[1:]
    with pytest.raises(IntrinsicsError, match="non-finite"):
        camera_info_to_intrinsics(nan)
    negative = make_camera_info(640, 480, "cam", f_px=-5.0)
    with pytest.raises(IntrinsicsError, match="focal lengths must be > 0"):
        camera_info_to_intrinsics(negative)
