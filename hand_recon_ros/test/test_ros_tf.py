"""ros.tf_publisher: wrist transforms from a FrameResult, and TF turning itself off when tf2_ros is missing."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from std_msgs.msg import Header  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import synthetic_hand  # noqa: E402

from hand_recon_ros.pipeline.types import FrameResult  # noqa: E402
from hand_recon_ros.ros.tf_publisher import WristTfPublisher, create_tf_publisher, wrist_transforms  # noqa: E402


def test_one_transform_per_side_under_the_camera_frame() -> None:
    left, right = synthetic_hand("left", False), synthetic_hand("right", False)
    right = dataclasses.replace(right, wrist_quaternion=np.array([0.0, 0.0, 0.6, 0.8], np.float32))
    weaker_left = dataclasses.replace(left, detection=dataclasses.replace(left.detection, score=0.1),
                                      wrist_position=np.array([9.0, 9.0, 9.0], np.float32))
    unplaced = dataclasses.replace(synthetic_hand("left", False), joints_3d=None)
    header = Header(frame_id="cam_optical")
    transforms = wrist_transforms(FrameResult(640, 480, True, [weaker_left, right, left, unplaced]), header, "h_")
    by_child = {t.child_frame_id: t for t in transforms}
    assert set(by_child) == {"h_left_wrist", "h_right_wrist"}
    assert all(t.header.frame_id == "cam_optical" for t in transforms)
    assert by_child["h_left_wrist"].transform.translation.x == pytest.approx(-0.1)
    r = by_child["h_right_wrist"].transform.rotation
    assert (r.z, r.w) == (pytest.approx(0.6), pytest.approx(0.8))


class RecordingBroadcaster:
    """Stands in for tf2_ros.TransformBroadcaster (not installable here); records what it is given."""

    def __init__(self) -> None:
        self.sent: list = []

    def sendTransform(self, transforms: list) -> None:  # noqa: N802 - tf2_ros's name
        self.sent.append(transforms)


def test_publisher_sends_only_when_there_is_a_hand() -> None:
    broadcaster = RecordingBroadcaster()
    publisher = WristTfPublisher(broadcaster, "")
    assert publisher.publish(FrameResult(640, 480, True, []), Header()) == 0 and broadcaster.sent == []
    assert publisher.publish(FrameResult(640, 480, True, [synthetic_hand("right", False)]), Header()) == 1
    assert broadcaster.sent[0][0].child_frame_id == "right_wrist"


@pytest.mark.skipif(importlib.util.find_spec("tf2_ros") is not None, reason="tf2_ros is installed here")
def test_without_tf2_ros_tf_is_off_with_the_reason() -> None:
    publisher, reason = create_tf_publisher(object(), "hand_")
    assert publisher is None
    assert "TF off" in reason and "tf2_ros" in reason


@pytest.mark.parametrize(("given", "sent"), [
    ((0.0, 0.0, 1.2, 1.6), (0.0, 0.0, 0.6, 0.8)),  # not unit length: normalised like HandArray's wrist_pose
    ((0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)),  # zero: identity
    ((float("nan"), 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 1.0)),  # non-finite: identity
])
def test_wrist_rotation_is_a_unit_quaternion_like_the_message(given, sent) -> None:
    from hand_recon_ros.ros.message_conversion import hand_result_to_msg

    hand = dataclasses.replace(synthetic_hand("right", False), wrist_quaternion=np.array(given, np.float32))
    (transform,) = wrist_transforms(FrameResult(640, 480, True, [hand]), Header(frame_id="cam"), "h_")
    r = transform.transform.rotation
    np.testing.assert_allclose((r.x, r.y, r.z, r.w), sent, atol=1e-6)
    o = hand_result_to_msg(hand).wrist_pose.orientation
    np.testing.assert_allclose((r.x, r.y, r.z, r.w), (o.x, o.y, o.z, o.w), atol=1e-7)
