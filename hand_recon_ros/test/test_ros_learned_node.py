"""Over real DDS: hand_recon_node with reconstructor:=learned and a model made by `hand-recon export`.

A tiny untrained network is exported from a checkpoint with the real command, the real node runs it through
ONNX Runtime on a real photo, and HandArray comes back here with both hands placed in 3D.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import hand_recon_msgs.msg  # noqa: F401 - built by make setup, never skipped
import numpy as np
import pytest
import rclpy  # noqa: F401 - required, never skipped

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import Peer, start_node, stop_node  # noqa: E402

from hand_recon_ros.io.image_source import read_image  # noqa: E402

DOMAIN_ID = 110 + os.getpid() % 10  # 110..119
STARTUP_TIMEOUT_S = 90.0
RECEIVE_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory) -> Path:
    import torch

    from hand_recon_ros.cli import main
    from hand_recon_ros.network import NetworkConfig, build_model
    from hand_recon_ros.network.config import TINY_NETWORK_CONFIG

    folder = tmp_path_factory.mktemp("learned_node")
    cfg = NetworkConfig.from_dict(TINY_NETWORK_CONFIG)
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict(), "network_config": cfg.to_dict(), "train_config": {},
                "step": 0}, folder / "last.pt")
    assert main(["export", str(folder / "last.pt"), "-o", str(folder / "tiny.onnx")]) == 0
    return folder / "tiny.onnx"


def test_node_runs_the_learned_reconstructor(woman_hands_path: Path, model_paths, exported_model: Path) -> None:
    rgb = read_image(woman_hands_path)
    process = start_node(DOMAIN_ID, {"reconstructor": "learned", "learned_model": str(exported_model)}, fake=False,
                         extra_args=["-r", "__node:=hand_recon_learned"])
    peer = Peer(DOMAIN_ID, node_name="learned_peer")
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and not peer.image_pub.get_subscription_count():
            assert process.poll() is None, stop_node(process)[1]
            time.sleep(0.1)
        stamp = 7.0
        while time.monotonic() < deadline and not peer.hands_with_stamp(stamp):
            stamp += 0.5
            peer.send(rgb, stamp, "learned_camera_optical_frame")
            peer.wait_for(lambda s=stamp: bool(peer.hands_with_stamp(s)), 1.0)
        assert peer.hands_with_stamp(stamp), "no HandArray from the node with the learned reconstructor"
        hands = peer.hands_with_stamp(stamp)[-1]
    finally:
        peer.close()
        code, output = stop_node(process)
    assert code == 0, output
    assert "learned: onnxruntime-cpu" in output  # the backend line the node logs
    assert sorted(h.side for h in hands.hands) == [0, 1]
    for hand in hands.hands:
        joints = np.array([[p.x, p.y, p.z] for p in hand.joints])
        assert joints.shape == (21, 3) and np.all(np.isfinite(joints)) and np.all(joints[:, 2] > 0)


def test_node_with_a_missing_learned_model_stays_up_and_says_which_file(model_paths, tmp_path) -> None:
    missing = tmp_path / "no_such_model.onnx"
    process = start_node(DOMAIN_ID, {"reconstructor": "learned", "learned_model": str(missing),
                                     "no_image_timeout_s": 60.0}, fake=False,
                         extra_args=["-r", "__node:=hand_recon_learned_missing"])
    peer = Peer(DOMAIN_ID, node_name="learned_missing_peer")
    try:
        def fatal() -> bool:
            status = peer.latest_status()
            return status is not None and "pipeline not loaded" in status.message

        assert peer.wait_for(fatal, STARTUP_TIMEOUT_S), "no 'pipeline not loaded' ERROR on /diagnostics"
        status = peer.latest_status()
        assert status.level == b"\x02" and "no_such_model.onnx does not exist" in status.message
        assert process.poll() is None, "node died"
    finally:
        peer.close()
        code, output = stop_node(process)
    assert code == 0, output
