"""Optional TF broadcast of the wrist frames (``<prefix>left_wrist`` / ``<prefix>right_wrist``).

tf2_ros is not on PyPI; when it cannot be imported the node runs without TF and says so once.
"""

from __future__ import annotations

from typing import Any

from hand_recon_ros.pipeline.types import FrameResult
from hand_recon_ros.ros.message_conversion import placeable, unit_quaternion


def wrist_transforms(result: FrameResult, header: Any, prefix: str) -> list[Any]:
    """geometry_msgs/TransformStamped for each placed hand's wrist, child of the image's frame."""
    from geometry_msgs.msg import TransformStamped

    transforms = []
    seen: set[str] = set()
    for hand in sorted(result.hands, key=lambda h: -h.detection.score):
        if not placeable(hand) or hand.side in seen:
            continue
        seen.add(hand.side)
        position = hand.wrist_position if hand.wrist_position is not None else hand.joints_3d[0]
        quaternion = unit_quaternion(hand.wrist_quaternion)  # as in HandArray: tf2 rejects non-unit rotations
        transform = TransformStamped()
        transform.header = header
        transform.child_frame_id = f"{prefix}{hand.side}_wrist"
        t = transform.transform.translation
        t.x, t.y, t.z = (float(v) for v in position)
        r = transform.transform.rotation
        r.x, r.y, r.z, r.w = (float(v) for v in quaternion)
        transforms.append(transform)
    return transforms


class WristTfPublisher:
    """Sends wrist transforms with a tf2_ros.TransformBroadcaster."""

    def __init__(self, broadcaster: Any, prefix: str) -> None:
        self._broadcaster = broadcaster
        self.prefix = prefix

    def publish(self, result: FrameResult, header: Any) -> int:
        """Broadcast the wrists of ``result``; returns how many transforms were sent."""
        transforms = wrist_transforms(result, header, self.prefix)
        if transforms:
            self._broadcaster.sendTransform(transforms)
        return len(transforms)


def create_tf_publisher(node: Any, prefix: str) -> tuple[WristTfPublisher | None, str]:
    """A WristTfPublisher for ``node``, or None and the reason when tf2_ros is not importable."""
    try:
        from tf2_ros import TransformBroadcaster
    except ImportError as exc:
        return None, f"TF off: tf2_ros is not importable ({exc}); install ros-<distro>-tf2-ros to get wrist frames"
    return WristTfPublisher(TransformBroadcaster(node), prefix), f"TF on: {prefix}left_wrist / {prefix}right_wrist"
