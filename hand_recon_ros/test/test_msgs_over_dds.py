"""A fully filled HandArray published by one OS process arrives intact in another, over real Fast DDS."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import rclpy  # noqa: E402  (required: a missing rclpy is a failure, never a skip)
from hand_recon_msgs.msg import HandArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, QoSReliabilityPolicy  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from peers.hand_array_talker import make_full_hand_array  # noqa: E402

TALKER = Path(__file__).parent / "peers" / "hand_array_talker.py"
DOMAIN_ID = "61"
RECEIVE_TIMEOUT_S = 20.0


def _points(points) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in points])


def _assert_same(got: HandArray, want: HandArray) -> None:
    assert got.header.frame_id == want.header.frame_id
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (want.header.stamp.sec, want.header.stamp.nanosec)
    assert got.intrinsics_known == want.intrinsics_known
    assert len(got.hands) == len(want.hands) == 2
    for g, w in zip(got.hands, want.hands):
        assert (g.side, g.track_id) == (w.side, w.track_id)
        assert g.score == pytest.approx(w.score) and g.side_score == pytest.approx(w.side_score)
        np.testing.assert_array_equal(_points(g.joints), _points(w.joints))
        np.testing.assert_array_equal(np.asarray(g.joint_confidence), np.asarray(w.joint_confidence))
        np.testing.assert_array_equal(np.asarray(g.keypoints_2d), np.asarray(w.keypoints_2d))
        assert g.wrist_pose == w.wrist_pose
        np.testing.assert_array_equal(_points(g.mesh.vertices), _points(w.mesh.vertices))
        assert [list(t.vertex_indices) for t in g.mesh.triangles] == [list(t.vertex_indices) for t in w.mesh.triangles]
        np.testing.assert_array_equal(np.asarray(g.mano_pose), np.asarray(w.mano_pose))
        np.testing.assert_array_equal(np.asarray(g.mano_shape), np.asarray(w.mano_shape))


def test_hand_array_crosses_processes_intact() -> None:
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN_ID)
    talker = subprocess.Popen(
        [sys.executable, str(TALKER), "hands_roundtrip", "7", "8.0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    received: list[HandArray] = []
    got_one = threading.Event()
    os.environ["ROS_DOMAIN_ID"] = DOMAIN_ID
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("hand_array_listener", context=context)
    node.create_subscription(
        HandArray,
        "hands_roundtrip",
        lambda m: (received.append(m), got_one.set()),
        QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE),
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        assert got_one.wait(RECEIVE_TIMEOUT_S), "no HandArray arrived from the other process over DDS"
    finally:
        executor.shutdown()
        spin.join(timeout=5.0)
        assert not spin.is_alive(), "executor thread did not stop"
        node.destroy_node()
        rclpy.shutdown(context=context)
    _assert_same(received[0], make_full_hand_array(7))

    out, err = talker.communicate(timeout=30)
    assert talker.returncode == 0, f"talker exited {talker.returncode}: {err}"
    assert "terminate called" not in err


def test_executor_shutdown_is_clean_in_a_fresh_process() -> None:
    """A process that spins an executor thread and shuts down as the product does exits 0 without abort."""
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN_ID)
    proc = subprocess.run(
        [sys.executable, str(TALKER), "hands_shutdown_check", "1", "0.3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "terminate called" not in proc.stderr
