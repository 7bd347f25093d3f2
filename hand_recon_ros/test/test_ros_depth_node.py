"""Depth over real DDS: the real hand_recon_node (real pipeline, ONNX Runtime) with colour + registered depth.

A constant depth map (16UC1 millimetres, then 32FC1 metres) puts the hands at that distance within 1 cm and
marks them PLACEMENT_DEPTH, keeping the given hand_length_m (not measured: the photo's hands would measure
0.25-0.29 m against this depth); a depth frame of the wrong size or a stale one falls back to monocular placement,
is counted in /diagnostics (WARN with use_depth: on) and the node keeps running.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import hand_recon_msgs.msg  # noqa: F401 - built by make setup, never skipped
import numpy as np
import rclpy  # noqa: F401 - required, never skipped

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import Peer, make_image_msg, start_node, stop_node  # noqa: E402

from hand_recon_ros.io.image_source import read_image  # noqa: E402

DOMAIN_ID = 180 + os.getpid() % 5  # 180..184 (this project's depth tests: 180-194)
STARTUP_TIMEOUT_S = 120.0
RECEIVE_TIMEOUT_S = 30.0
TOLERANCE_M = 0.01
GIVEN_HAND_LENGTH_M = 0.17
SWITCH_FRAMES = 1
# How long before its colour frame each depth frame is sent: generous, so that on a loaded CI machine the depth
# callback has run before the colour frame is paired (the pairer waits only 50 ms for a late depth frame).
DEPTH_LEAD_S = 0.25
FRAME = "rgbd_camera_optical_frame"


def _depth_msg(array: np.ndarray, stamp_s: float, encoding: str) -> Any:
    msg = make_image_msg(array[..., None] if array.ndim == 2 else array, stamp_s, FRAME)
    msg.encoding = encoding
    msg.step = array.shape[1] * array.itemsize
    return msg


def _hands(peer: Peer, stamp: float) -> Any:
    assert peer.wait_for(lambda: bool(peer.hands_with_stamp(stamp)), RECEIVE_TIMEOUT_S), f"no HandArray at {stamp}"
    return peer.hands_with_stamp(stamp)[-1]


def _median_z(hand: Any) -> float:
    return float(np.median([p.z for p in hand.joints]))


def test_real_node_places_hands_by_depth_and_falls_back_on_bad_depth(woman_hands_path: Path, model_paths) -> None:
    from hand_recon_msgs.msg import Hand
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rgb = read_image(woman_hands_path)
    height, width = rgb.shape[:2]
    # image mode: every frame stands alone. (In video mode a constant depth map that jumps from 0.7 to 0.5 m under
    # the same image means the hand shrank by 29 %; the track's size and smoothing follow that over several frames.)
    process = start_node(DOMAIN_ID, {"use_depth": "on", "depth_max_age_s": 0.1, "mode": "image",
                                        "hand_length_m": GIVEN_HAND_LENGTH_M}, fake=False)
    peer = Peer(DOMAIN_ID, node_name="depth_peer")
    depth_pub = peer.node.create_publisher(Image, "depth", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    mm = np.full((height, width), 700, np.uint16)

    def send(stamp: float, depth: Any | None) -> None:
        if depth is not None:
            depth_pub.publish(depth)
            time.sleep(DEPTH_LEAD_S)  # the depth frame first, as a registered camera usually delivers both
        peer.send(rgb, stamp, FRAME)

    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and not (peer.image_pub.get_subscription_count()
                                                   and depth_pub.get_subscription_count()):
            assert process.poll() is None, stop_node(process)[1]
            time.sleep(0.1)
        stamp = 100.0
        while time.monotonic() < deadline and not peer.hands_with_stamp(stamp):
            stamp += 0.5  # new frames until one makes the round trip (discovery, pipeline loading)
            send(stamp, _depth_msg(mm, stamp, "16UC1"))
            peer.wait_for(lambda s=stamp: bool(peer.hands_with_stamp(s)), 1.0)
        for _ in range(2):  # the first round trip may beat the depth reader's matching: two more frames
            stamp += 0.5
            send(stamp, _depth_msg(mm, stamp, "16UC1"))
        results = {"16UC1": _hands(peer, stamp)}
        switch: list[list[float]] = []
        for _ in range(SWITCH_FRAMES):
            stamp += 0.5
            send(stamp, _depth_msg(np.full((height, width), 0.5, np.float32), stamp, "32FC1"))
            switch.append([_median_z(h) for h in _hands(peer, stamp).hands])
        results["32FC1"] = _hands(peer, stamp)
        stamp += 0.5
        send(stamp, _depth_msg(np.full((10, 10), 700, np.uint16), stamp, "16UC1"))
        results["wrong size"] = _hands(peer, stamp)
        stamp += 0.5
        send(stamp, _depth_msg(mm, stamp - 1.0, "16UC1"))
        results["stale"] = _hands(peer, stamp)
        stamp += 0.5
        send(stamp, _depth_msg(mm, stamp, "rgb8"))
        results["wrong encoding"] = _hands(peer, stamp)
        assert peer.wait_for(lambda: (s := peer.latest_status()) is not None and any(
            kv.key == "depth fallbacks" and int(kv.value) >= 3 for kv in s.values), 5.0), "no depth diagnostics"
        status = peer.latest_status()
    finally:
        peer.close()
        code, output = stop_node(process)
    assert code == 0, output
    for name, expected in (("16UC1", 0.7), ("32FC1", 0.5)):
        assert len(results[name].hands) == 2, name
        for hand in results[name].hands:
            assert hand.placement == Hand.PLACEMENT_DEPTH, name
            assert abs(_median_z(hand) - expected) <= TOLERANCE_M, (name, _median_z(hand), switch)
            assert abs(hand.hand_length_m - GIVEN_HAND_LENGTH_M) < 1e-6, hand.hand_length_m
    for name in ("wrong size", "stale", "wrong encoding"):
        assert len(results[name].hands) == 2, name
        assert all(h.placement == Hand.PLACEMENT_MONOCULAR for h in results[name].hands), name
    values = {kv.key: kv.value for kv in status.values}
    assert values["depth"] == "on"
    assert int(values["depth frames used"]) >= 2 and int(values["depth fallbacks"]) >= 3
    assert int(values["hands placed by depth"]) >= 4
    assert "encoding" in values["last depth fallback"]
    assert "depth not used" in output
