"""End to end over real DDS: the real hand_recon_node (python -m, real HandPipeline, ONNX Runtime) on a real photo.

Publisher (this process) -> node (its own process) -> HandArray, markers and overlay back here.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("hand_recon_msgs.msg")
sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import Peer, start_node, stop_node  # noqa: E402

from hand_recon_ros.io.image_source import read_image  # noqa: E402

DOMAIN_ID = 224 + os.getpid() % 9  # 224..232
STARTUP_TIMEOUT_S = 90.0
RECEIVE_TIMEOUT_S = 30.0
# Plausible distance of hands from a camera in a photo like woman_hands.jpg (metres).
MIN_DEPTH_M, MAX_DEPTH_M = 0.15, 3.0


def test_real_node_on_a_real_photo(woman_hands_path: Path, model_paths) -> None:
    rgb = read_image(woman_hands_path)
    height, width = rgb.shape[:2]
    process = start_node(DOMAIN_ID, {"marker_lifetime_s": 1.0}, fake=False)
    peer = Peer(DOMAIN_ID, node_name="e2e_peer")
    peer.subscribe_overlay()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and not peer.image_pub.get_subscription_count():
            assert process.poll() is None, stop_node(process)[1]
            time.sleep(0.1)
        stamp = 42.0
        while time.monotonic() < deadline and not peer.hands_with_stamp(stamp):
            stamp += 0.5  # a new frame until one makes the round trip (discovery, pipeline loading)
            peer.send(rgb, stamp, "woman_camera_optical_frame")
            peer.wait_for(lambda s=stamp: bool(peer.hands_with_stamp(s)), 1.0)
        assert peer.hands_with_stamp(stamp), "no HandArray from the real node"
        for _ in range(3):  # a few more frames: tracking mode, as from a camera
            stamp += 0.1
            peer.send(rgb, stamp, "woman_camera_optical_frame")
            assert peer.wait_for(lambda s=stamp: bool(peer.hands_with_stamp(s)), RECEIVE_TIMEOUT_S)
        hands = peer.hands_with_stamp(stamp)[-1]
        assert peer.wait_for(lambda: bool(peer.markers_with_stamp(stamp)), RECEIVE_TIMEOUT_S)
        assert peer.wait_for(lambda: bool(peer.overlays), RECEIVE_TIMEOUT_S), "no overlay while subscribed"
    finally:
        peer.close()
        code, output = stop_node(process)
    assert code == 0, output
    assert hands.header.frame_id == "woman_camera_optical_frame" and hands.intrinsics_known
    assert sorted(h.side for h in hands.hands) == [0, 1], "expected one left and one right hand"
    for hand in hands.hands:
        joints = np.array([[p.x, p.y, p.z] for p in hand.joints])
        assert np.all(np.isfinite(joints))
        assert MIN_DEPTH_M < joints[:, 2].mean() < MAX_DEPTH_M
        span = np.linalg.norm(joints[12] - joints[0])  # wrist -> middle tip, an adult hand is ~0.15-0.2 m
        assert 0.08 < span < 0.3, span
        uv = np.asarray(hand.keypoints_2d).reshape(21, 2)
        assert np.all((uv >= -50) & (uv <= [width + 50, height + 50]))
    markers = peer.markers_with_stamp(stamp)[-1]
    assert {(m.ns, m.id) for m in markers.markers} >= {("joints", 0), ("joints", 1), ("bones", 0), ("bones", 1)}
    overlay = peer.overlays[-1]
    assert (overlay.width, overlay.height, overlay.header.frame_id) == (width, height, "woman_camera_optical_frame")
    assert "backend: palm: litert" in output  # the CPU default


def test_unloadable_pipeline_keeps_the_node_up_with_an_error(model_paths) -> None:
    """A backend that cannot load here (TensorRT on a CPU machine) is an ERROR on /diagnostics, not a crash."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here, so the tensorrt backend may load")
    process = start_node(DOMAIN_ID, {"backend": "tensorrt", "no_image_timeout_s": 60.0}, fake=False,
                         extra_args=["-r", "__node:=hand_recon_no_backend"])
    peer = Peer(DOMAIN_ID, node_name="no_backend_peer")
    try:

        def fatal() -> bool:
            status = peer.latest_status()
            return status is not None and "pipeline not loaded" in status.message

        assert peer.wait_for(fatal, STARTUP_TIMEOUT_S), "no 'pipeline not loaded' ERROR on /diagnostics"
        status = peer.latest_status()
        assert status.level == b"\x02" and "tensorrt" in status.message.lower()
        peer.send(np.zeros((48, 64, 3), np.uint8), 9.0)
        time.sleep(1.5)
        assert process.poll() is None, "node died"
        assert not peer.hands_with_stamp(9.0)
    finally:
        peer.close()
        code, output = stop_node(process)
    assert code == 0, output
    assert "could not load the hand pipeline" in output
