"""ros.hand_array_cdr: the bytes the node publishes read back (rclpy's deserialisation) as the HandArray that
message_conversion builds from the same result, after rclpy's serialisation."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hand_recon_msgs.msg import Hand, HandArray
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import synthetic_hand  # noqa: E402

from hand_recon_ros.pipeline.grasp_signals import GraspSignals, GraspState  # noqa: E402
from hand_recon_ros.pipeline.types import FrameResult, HandMesh, HandResult  # noqa: E402
from hand_recon_ros.ros import hand_array_cdr as cdr  # noqa: E402
from hand_recon_ros.ros.message_conversion import frame_result_to_hand_array  # noqa: E402


def _fields(msg: object) -> object:
    """A message as nested plain values (NaN as the string 'nan', so equal NaNs compare equal)."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: _fields(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple, np.ndarray)) or type(msg).__name__ == "array":
        return [_fields(item) for item in msg]
    if isinstance(msg, (float, np.floating)):
        return "nan" if math.isnan(msg) else float(msg)
    if isinstance(msg, (np.integer, np.bool_)):
        return msg.item()
    return msg


def _varied_hands() -> list[HandResult]:
    """Hands covering every field: meshes (a non-finite vertex; an even and an odd triangle count, so the vertices
    need padding once), MANO or none, grasp or none, depth or monocular placement, a given or missing wrist
    position, a non-unit quaternion, an unplaceable hand."""
    left = synthetic_hand("left", with_mesh=True)
    left.mesh.vertices[3] = np.nan
    left = dataclasses.replace(
        left, mano_pose=np.linspace(-1, 1, 48, dtype=np.float32), mano_shape=np.arange(10, dtype=np.float32),
        grasp=GraspSignals(0.031, 0.4, GraspState.PINCH), placement="depth", hand_length_m=0.18,
        joint_confidence=np.linspace(-0.5, 1.5, 21, dtype=np.float32))
    right = synthetic_hand("right", with_mesh=True)
    right = dataclasses.replace(right, wrist_position=None, wrist_quaternion=np.array([0, 0, 2.0, 0], np.float32),
                                mesh=HandMesh(right.mesh.vertices, right.mesh.faces[:11]))  # odd: other padding
    unplaced = dataclasses.replace(synthetic_hand("left", with_mesh=False), joints_3d=None)
    right.detection.track_id = 123456
    return [left, unplaced, right]


@pytest.mark.parametrize("frame_id", ["camera_optical_frame", "", "kamera_ü"])
def test_bytes_read_back_as_the_message_conversion_builds(frame_id: str) -> None:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = 1_700_000_123, 987_654_321
    for hands, known in ((_varied_hands(), True), ([], False), (_varied_hands()[2:], False)):
        result = FrameResult(640, 480, known, hands)
        got = deserialize_message(cdr.hand_array_cdr(result, header), HandArray)
        # what a subscriber receives when the message is published as rosidl objects (float32 fields rounded)
        expected = deserialize_message(serialize_message(frame_result_to_hand_array(result, header)), HandArray)
        assert _fields(got) == _fields(expected)


def test_constants_match_the_message_definition() -> None:
    assert (cdr.SIDE_LEFT, cdr.SIDE_RIGHT) == (Hand.LEFT, Hand.RIGHT)
    assert (cdr.PLACEMENT_MONOCULAR, cdr.PLACEMENT_DEPTH) == (Hand.PLACEMENT_MONOCULAR, Hand.PLACEMENT_DEPTH)
    assert cdr.GRASP_OPEN == Hand.GRASP_OPEN
