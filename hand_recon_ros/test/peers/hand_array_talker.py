"""Publish a fully filled HandArray on a topic until told to stop (a separate-process DDS peer for tests).

Usage: python hand_array_talker.py TOPIC SEED DURATION_S
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np


def make_full_hand_array(seed: int):  # noqa: ANN201 - message type is only importable with ROS set up
    """A HandArray with every field filled from ``seed`` (both sides of the test build the same one)."""
    from geometry_msgs.msg import Point
    from hand_recon_msgs.msg import Hand, HandArray
    from shape_msgs.msg import MeshTriangle

    rng = np.random.default_rng(seed)
    msg = HandArray()
    msg.header.stamp.sec = 1_700_000_000 + seed
    msg.header.stamp.nanosec = 123_456_789
    msg.header.frame_id = "camera_color_optical_frame"
    msg.intrinsics_known = True
    for side in (Hand.LEFT, Hand.RIGHT):
        hand = Hand()
        hand.side = side
        hand.score = float(rng.uniform(0.5, 1.0))
        hand.side_score = float(rng.uniform(0.5, 1.0))
        hand.track_id = int(rng.integers(0, 1000))
        hand.joints = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in rng.normal(0.0, 0.1, (21, 3))]
        hand.joint_confidence = rng.uniform(0.0, 1.0, 21).astype(np.float32)
        hand.keypoints_2d = rng.uniform(0.0, 640.0, 42).astype(np.float32)
        hand.wrist_pose.position.x, hand.wrist_pose.position.y, hand.wrist_pose.position.z = map(
            float, rng.normal(0.0, 0.3, 3)
        )
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        o = hand.wrist_pose.orientation
        o.x, o.y, o.z, o.w = map(float, q)
        hand.mesh.vertices = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in rng.normal(0.0, 0.1, (30, 3))]
        hand.mesh.triangles = [
            MeshTriangle(vertex_indices=[int(a), int(b), int(c)]) for a, b, c in rng.integers(0, 30, (40, 3))
        ]
        hand.mano_pose = rng.normal(0.0, 0.5, 48).astype(np.float32).tolist()
        hand.mano_shape = rng.normal(0.0, 1.0, 10).astype(np.float32).tolist()
        msg.hands.append(hand)
    return msg


def main(argv: list[str]) -> int:
    """Publish the seeded message at 20 Hz for DURATION_S, then shut down cleanly."""
    import rclpy
    from hand_recon_msgs.msg import HandArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

    topic, seed, duration_s = argv[0], int(argv[1]), float(argv[2])
    rclpy.init()
    node = rclpy.create_node("hand_array_talker")
    qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)
    pub = node.create_publisher(HandArray, topic, qos)
    msg = make_full_hand_array(seed)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    end = time.monotonic() + duration_s
    try:
        while time.monotonic() < end:
            pub.publish(msg)
            time.sleep(0.05)
    finally:
        # The executor thread must be stopped and joined before rclpy.shutdown(), or the process aborts.
        executor.shutdown()
        spin.join(timeout=5.0)
        node.destroy_node()
        rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
