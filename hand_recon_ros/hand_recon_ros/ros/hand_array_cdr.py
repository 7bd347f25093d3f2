"""hand_recon_msgs/HandArray written straight to its serialized (plain CDR) bytes from a FrameResult.

The node publishes these bytes (rclpy publishes ``bytes`` as a serialized message; subscribers see an ordinary
HandArray). Building the message as rosidl Python objects instead (21 geometry_msgs/Point per hand, hundreds more
with meshes) and letting rclpy convert and serialise them took 0.5-0.8 ms of a 10 Hz frame on a 2-core CPU, run
cache-cold after the pipeline; here the arrays go in as numpy bytes (docs/ros.md, "Node overhead"). The values are
those of message_conversion.hand_result_to_msg; the layout follows HandArray.msg and Hand.msg (XCDR1
little-endian, alignment counted from the end of the 4-byte encapsulation header, as rmw_fastrtps writes it), and
test_ros_hand_array_cdr.py reads the bytes back with rclpy's deserialisation and compares them with that message.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from hand_recon_ros.pipeline.types import FrameResult, HandResult
from hand_recon_ros.ros.message_conversion import finite_or_zero, placeable, wrist_pose_values
from hand_recon_ros.skeleton import NUM_JOINTS

# Encapsulation header: CDR, little-endian (0x0001), options 0.
CDR_LE_HEADER = b"\x00\x01\x00\x00"
# Hand.msg constants (checked against the generated message class by the test)
SIDE_LEFT, SIDE_RIGHT = 0, 1
PLACEMENT_MONOCULAR, PLACEMENT_DEPTH = 0, 1
GRASP_OPEN = 0

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")
_SCORES = struct.Struct("<ffi")  # score, side_score, track_id
_POSE = struct.Struct("<7d")  # position x, y, z; orientation x, y, z, w
_F32 = struct.Struct("<f")
_GRASP = struct.Struct("<ff")  # pinch_distance, grasp_strength


class _CdrWriter:
    """Appends CDR fields, padding each to its alignment (relative to the end of the encapsulation header)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = [CDR_LE_HEADER]
        self.offset = 0

    def put(self, data: bytes, alignment: int = 1) -> None:
        padding = -self.offset % alignment
        if padding:
            self.parts.append(bytes(padding))
        self.parts.append(data)
        self.offset += padding + len(data)

    def length(self, count: int) -> None:
        self.put(_U32.pack(count), 4)

    def array(self, values: np.ndarray, alignment: int) -> None:
        """A fixed-size array or a sequence's elements (nothing, not even padding, when empty)."""
        if values.size:
            self.put(values.tobytes(), alignment)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def hand_array_cdr(result: FrameResult, header: Any) -> bytes:
    """The serialized HandArray for ``result`` with ``header`` (stamp and frame_id), placeable hands only."""
    writer = _CdrWriter()
    writer.put(_STAMP.pack(int(header.stamp.sec), int(header.stamp.nanosec)), 4)
    frame_id = str(header.frame_id).encode("utf-8") + b"\x00"
    writer.length(len(frame_id))
    writer.put(frame_id)
    hands = [hand for hand in result.hands if placeable(hand)]
    writer.length(len(hands))
    for hand in hands:
        _write_hand(writer, hand)
    writer.put(_U8.pack(bool(result.intrinsics_known)))
    return writer.bytes()


def _write_hand(writer: _CdrWriter, hand: HandResult) -> None:
    """One hand_recon_msgs/Hand, field by field in Hand.msg's order."""
    detection = hand.detection
    writer.put(_U8.pack(SIDE_LEFT if hand.side == "left" else SIDE_RIGHT))
    writer.put(_SCORES.pack(float(detection.score), float(detection.side_score), int(detection.track_id)), 4)
    joints = np.asarray(hand.joints_3d, dtype="<f8").reshape(NUM_JOINTS, 3)
    writer.array(joints, 8)
    confidence = np.clip(np.asarray(hand.joint_confidence, dtype=np.float32).reshape(NUM_JOINTS), 0, 1)
    writer.array(confidence.astype("<f4", copy=False), 4)
    writer.array(np.asarray(detection.keypoints_2d, dtype="<f4").reshape(NUM_JOINTS * 2), 4)
    position, quaternion = wrist_pose_values(hand, joints)
    writer.put(_POSE.pack(*position, *quaternion), 8)
    writer.put(_U8.pack(PLACEMENT_DEPTH if hand.placement == "depth" else PLACEMENT_MONOCULAR))
    writer.put(_F32.pack(float(hand.hand_length_m)), 4)
    # shape_msgs/Mesh: MeshTriangle[] triangles (uint32[3] each), then geometry_msgs/Point[] vertices
    if hand.mesh is None:
        faces, vertices = np.zeros((0, 3), "<u4"), np.zeros((0, 3), "<f8")
    else:
        faces = np.asarray(hand.mesh.faces, dtype="<u4").reshape(-1, 3)
        vertices = finite_or_zero(np.asarray(hand.mesh.vertices, dtype="<f8").reshape(-1, 3))
    writer.length(len(faces))
    writer.array(faces, 4)
    writer.length(len(vertices))
    writer.array(vertices, 8)
    for values in (hand.mano_pose, hand.mano_shape):
        sequence = np.zeros(0, "<f4") if values is None else np.asarray(values, dtype="<f4").reshape(-1)
        writer.length(sequence.size)
        writer.array(sequence, 4)
    grasp = hand.grasp
    pinch = math.nan if grasp is None else float(grasp.pinch_distance_m)
    strength = math.nan if grasp is None else float(grasp.grasp_strength)
    writer.put(_GRASP.pack(pinch, strength), 4)
    writer.put(_U8.pack(GRASP_OPEN if grasp is None else int(grasp.state)))
